"""Each person's language and time zone: saved from the account page or the header's chooser, kept
on the user, winning over the browser once signed in; anything forged or unknown falls back to the
defaults (English, the site's zone), never to an error."""

from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.urls import reverse

from billing.tests.builders import PASSWORD, verified_user
from portal.models import SignIn, User

URL = reverse("student:account")
LOCALE = reverse("student:account_locale")
CHOOSER = reverse("language_set")
COOKIE = settings.LANGUAGE_COOKIE_NAME
HTMX = {"HX-Request": "true", "HX-Target": "locale"}
# 23:16 UTC on 28 November is 00:16 on the 29th in Berlin and still 23:16 on the 28th in Lisbon.
SIGNED_IN_AT = datetime(2026, 11, 28, 23, 16, tzinfo=UTC)
BERLIN_TEXT, LISBON_TEXT = "29 Nov 2026, 00:16", "28 Nov 2026, 23:16"


@pytest.fixture(autouse=True)
def berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"


def reload(user):
    return User.objects.get(pk=user.pk)


def page_language(response):
    assert response.status_code == 200
    text = response.content.decode()
    return text.split('<html lang="', 1)[1].split('"', 1)[0]


def sign_in(client, user, **headers):
    """Sign in as a person does, through allauth's form (user_logged_in fires with the real request)."""
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD}, headers=headers)
    assert response.status_code == 302, "the sign-in should be accepted"
    return client


# The account page's section


def test_the_account_page_offers_the_languages_and_zones_with_the_saved_ones_chosen(student_client, student):
    User.objects.filter(pk=student.user.pk).update(language="pt-pt", time_zone="Europe/Lisbon")

    text = student_client.get(URL).content.decode()

    assert '<section id="locale"' in text
    # Each language named in itself, marked with its own lang for screen readers.
    assert '<option value="pt-pt" selected lang="pt-pt">Português</option>' in text
    assert '<option value="en" lang="en">English</option>' in text
    assert '<option value="Europe/Lisbon" selected>Europe/Lisbon</option>' in text


def test_a_zone_never_chosen_shows_as_the_sites_default(student_client, student):
    User.objects.filter(pk=student.user.pk).update(language="en", time_zone="")

    text = student_client.get(URL).content.decode()

    assert '<option value="" selected>Default (Europe/Berlin)</option>' in text
    assert '<option value="en" selected lang="en">English</option>' in text


def test_it_saves_the_language_and_the_page_comes_back_in_it(student_client, student):
    response = student_client.post(LOCALE, {"language": "pt-pt", "time_zone": ""})

    assert response.status_code == 302 and response["Location"] == f"{URL}#locale"
    assert reload(student.user).language == "pt-pt"
    assert response.cookies[COOKIE].value == "pt-pt"  # the pages after signing out stay in it
    page = student_client.get(response["Location"], headers={"Accept-Language": "en"})
    assert page_language(page) == "pt-pt"
    assert "A minha conta" in page.content.decode()


def test_under_htmx_a_saved_language_reloads_the_whole_page(student_client, student):
    response = student_client.post(LOCALE, {"language": "pt-pt", "time_zone": ""}, headers=HTMX)

    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{URL}#locale"  # a swap would keep the rest of the page in English
    assert reload(student.user).language == "pt-pt"


def test_it_saves_the_time_zone(student_client, student):
    student_client.post(LOCALE, {"language": "en", "time_zone": "Atlantic/Azores"})
    assert reload(student.user).time_zone == "Atlantic/Azores"


def test_the_default_zone_saves_as_blank(student_client, student):
    User.objects.filter(pk=student.user.pk).update(time_zone="Europe/Lisbon")

    student_client.post(LOCALE, {"language": "en", "time_zone": ""})

    assert reload(student.user).time_zone == ""


@pytest.mark.parametrize("language", ["xx", "pt-br", "../../etc", "", "e" * 500])
def test_an_unknown_language_is_refused_with_a_clear_message_and_nothing_changes(student_client, student, language):
    User.objects.filter(pk=student.user.pk).update(language="en", time_zone="Europe/Lisbon")

    response = student_client.post(LOCALE, {"language": language, "time_zone": "Atlantic/Madeira"})

    assert response.status_code == 200
    text = response.content.decode()
    assert "Choose one of the languages offered." in text or "This field is required." in text
    assert "field-invalid" in text
    assert (reload(student.user).language, reload(student.user).time_zone) == ("en", "Europe/Lisbon")
    assert COOKIE not in response.cookies


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "UTC+1", "../../etc/passwd", "europe/lisbon", "z" * 500])
def test_an_unknown_time_zone_is_refused_with_a_clear_message_and_nothing_changes(student_client, student, zone):
    User.objects.filter(pk=student.user.pk).update(language="en", time_zone="")

    response = student_client.post(LOCALE, {"language": "pt-pt", "time_zone": zone})

    assert response.status_code == 200
    assert "Choose a time zone from the list." in response.content.decode()
    assert (reload(student.user).language, reload(student.user).time_zone) == ("en", "")


def test_under_htmx_a_refused_choice_comes_back_in_place(student_client, student):
    response = student_client.post(LOCALE, {"language": "xx", "time_zone": ""}, headers=HTMX)

    text = response.content.decode()
    assert response.status_code == 200 and "HX-Redirect" not in response
    assert text.lstrip().startswith('<section id="locale"') and "<html" not in text
    assert "Choose one of the languages offered." in text


def test_the_section_refuses_a_get(student_client):
    assert student_client.get(LOCALE).status_code == 405


def test_the_section_refuses_anonymous_visitors_and_changes_nothing(client, student):
    response = client.post(LOCALE, {"language": "pt-pt", "time_zone": ""})

    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    assert reload(student.user).language != "pt-pt"


# Which language a page is in


def test_the_saved_language_wins_over_the_browsers_after_signing_in(client, db):
    user = verified_user("joao@example.com")
    User.objects.filter(pk=user.pk).update(language="pt-pt")

    sign_in(client, user, **{"Accept-Language": "en"})

    assert page_language(client.get(URL, headers={"Accept-Language": "en"})) == "pt-pt"
    assert reload(user).language == "pt-pt"  # signing in with an English browser did not change it


def test_a_blank_language_follows_the_browser(student_client, student):
    User.objects.filter(pk=student.user.pk).update(language="")

    assert page_language(student_client.get(URL, headers={"Accept-Language": "pt-PT,pt;q=0.9"})) == "pt-pt"
    assert page_language(student_client.get(URL, headers={"Accept-Language": "en-GB,en;q=0.9"})) == "en"


def test_the_first_sign_in_keeps_the_browsers_language_when_none_was_chosen(client, db):
    user = verified_user("joao@example.com")

    sign_in(client, user, **{"Accept-Language": "pt-PT,pt;q=0.9,en;q=0.5"})

    assert reload(user).language == "pt-pt"  # emails sent later by a job read as their pages did


def test_a_sign_in_never_overwrites_a_chosen_language(client, db):
    user = verified_user("ana@example.com")
    User.objects.filter(pk=user.pk).update(language="en")

    sign_in(client, user, **{"Accept-Language": "pt-PT"})

    assert reload(user).language == "en"


def test_a_browser_asking_for_a_language_we_do_not_offer_reads_and_keeps_english(client, db):
    user = verified_user("hans@example.com")

    sign_in(client, user, **{"Accept-Language": "de-DE,de;q=0.9"})

    assert reload(user).language == "en"  # what their pages were in, so their emails are too
    assert page_language(client.get(URL, headers={"Accept-Language": "de-DE"})) == "en"


# The header's chooser


def test_the_header_chooser_saves_the_language_on_the_user_and_sets_the_cookie(student_client, student):
    response = student_client.post(CHOOSER, {"language": "pt-pt", "next": URL})

    assert response.status_code == 302 and response["Location"] == URL
    assert reload(student.user).language == "pt-pt"
    assert response.cookies[COOKIE].value == "pt-pt"
    assert page_language(student_client.get(URL)) == "pt-pt"


def test_the_header_chooser_works_signed_out_with_the_cookie_alone(client, db):
    response = client.post(CHOOSER, {"language": "pt-pt", "next": reverse("account_login")})

    assert response["Location"] == reverse("account_login")
    assert response.cookies[COOKIE].value == "pt-pt"
    assert page_language(client.get(reverse("account_login"), headers={"Accept-Language": "en"})) == "pt-pt"


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.example/", "//evil.example/account/", "http://testserver.evil.example/", "", "javascript:alert(1)"],
)
def test_the_header_chooser_refuses_an_off_site_next_and_goes_home(student_client, student, next_url):
    response = student_client.post(CHOOSER, {"language": "pt-pt", "next": next_url})

    assert response.status_code == 302 and response["Location"] == "/"
    assert reload(student.user).language == "pt-pt"


@pytest.mark.parametrize("language", ["xx", "../../etc", "", "p" * 5000])
def test_the_header_chooser_ignores_an_unknown_language(student_client, student, language):
    response = student_client.post(CHOOSER, {"language": language, "next": URL})

    assert response.status_code == 302 and response["Location"] == URL
    assert reload(student.user).language == "en"  # the one the sign-in remembered
    assert COOKIE not in response.cookies


def test_the_header_chooser_refuses_a_get(client, db):
    assert client.get(CHOOSER).status_code == 405


# Forged input


@pytest.mark.parametrize("forged", ["xx", "../../etc", "e" * 5000, "zh-hans-xx-yy"])
def test_a_forged_language_cookie_gives_the_english_page(client, db, forged):
    client.cookies[COOKIE] = forged

    assert page_language(client.get(reverse("account_login"))) == "en"


@pytest.mark.parametrize("forged", ["xx", "../../etc", "*;q=abc", "en;q=", ",,,;;;", "a" * 10_000, "pt-" + "x" * 300])
def test_a_forged_accept_language_gives_the_english_page(client, db, forged):
    assert page_language(client.get(reverse("account_login"), headers={"Accept-Language": forged})) == "en"


def test_a_forged_cookie_signed_in_still_gives_the_saved_language(student_client, student):
    User.objects.filter(pk=student.user.pk).update(language="pt-pt")
    student_client.cookies[COOKIE] = "../../etc"

    assert page_language(student_client.get(URL)) == "pt-pt"


# The time zone


def test_the_saved_time_zone_changes_how_times_show_on_the_account_page(student_client, student):
    SignIn.objects.filter(user=student.user).delete()
    SignIn.objects.filter(pk=SignIn.objects.create(user=student.user, ip_address="192.0.2.1").pk).update(
        at=SIGNED_IN_AT
    )

    in_berlin = student_client.get(URL).content.decode()  # blank: the site's zone
    student_client.post(LOCALE, {"language": "en", "time_zone": "Europe/Lisbon"})
    in_lisbon = student_client.get(URL).content.decode()

    assert BERLIN_TEXT in in_berlin and LISBON_TEXT not in in_berlin
    assert LISBON_TEXT in in_lisbon and BERLIN_TEXT not in in_lisbon
