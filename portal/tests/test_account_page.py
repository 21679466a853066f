"""The student's account page: each section's form saves, refuses bad input with a clear message
and changes nothing, answers HTMX with its section; the student only ever sees their own data."""

import re

import pytest
from django.urls import reverse

from alerts import notifications
from alerts.models import EmailOptOut, Notification
from billing import profiles
from billing.errors import AccountDetailsInvalid, ReasonRequired
from billing.models import Account, AuditEntry
from billing.tests.builders import credit, make_staff, make_student, use
from portal.models import SignIn
from portal.student import account_views

URL = reverse("student:account")
DETAILS = reverse("student:account_details")
REMINDER = reverse("student:account_reminder")
ALERTS = reverse("student:alert_preferences")
HTMX = {"HX-Request": "true", "HX-Target": "details"}
VALID_NIF = "123456789"  # check digit 9: 1·9+2·8+3·7+4·6+5·5+6·4+7·3+8·2 = 156, 156 mod 11 = 2, 11−2 = 9


def details(**changes):
    return {
        "first_name": "Ana",
        "last_name": "Silva",
        "billing_address": "Rua Augusta 1\nLisboa",
        "tax_id": "",
    } | changes


def reload(account):
    return Account.objects.select_related("user").get(pk=account.pk)


# The page


def test_it_sends_anonymous_visitors_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


@pytest.mark.parametrize("url", [DETAILS, REMINDER, ALERTS])
def test_its_forms_refuse_anonymous_visitors_and_change_nothing(client, student, url):
    response = client.post(url, details() | {"hours": "1", "minutes": "0"})

    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    assert reload(student).user.last_name == ""
    assert reload(student).low_balance_threshold_minutes == 120


@pytest.mark.parametrize("url", [DETAILS, REMINDER])
def test_its_forms_refuse_a_get(student_client, url):
    assert student_client.get(url).status_code == 405


def test_the_header_links_to_it(student_client):
    text = student_client.get(reverse("student:dashboard")).content.decode()
    assert f'<a href="{URL}">Account</a>' in text


def test_it_links_to_the_email_password_and_two_factor_pages(student_client):
    text = student_client.get(URL).content.decode()

    for name in ("account_email", "account_change_password", "mfa_index"):
        assert f'href="{reverse(name)}"' in text, name


def test_it_shows_the_saved_details_and_level(student_client, student):
    profiles.billing_details_save(
        account=student, first_name="Ana", last_name="Silva", billing_address="Rua Augusta 1", tax_id=VALID_NIF
    )
    profiles.low_balance_level_set(account=student, minutes=150)

    text = student_client.get(URL).content.decode()

    assert 'value="Silva"' in text and "Rua Augusta 1</textarea>" in text and f'value="{VALID_NIF}"' in text
    assert re.search(r'name="hours" value="2"', text) and re.search(r'name="minutes" value="30"', text)
    assert "We remind you when your balance falls below 2.5 h." in text


def test_it_lists_the_last_ten_sign_ins_with_a_short_user_agent(student_client, student):
    agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
    for number in range(12):
        SignIn.objects.create(user=student.user, ip_address=f"192.0.2.{number}", user_agent=agent)

    text = student_client.get(URL).content.decode()

    shown = re.findall(r"from (192\.0\.2\.\d+)", text)
    assert shown == [f"192.0.2.{number}" for number in range(11, 1, -1)]
    assert "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, …" in text


def test_it_shows_only_the_students_own_details_and_sign_ins(student_client, student):
    other = make_student("bruno@example.com", first_name="Bruno", last_name="Costa")
    profiles.billing_details_save(
        account=other, first_name="Bruno", last_name="Costa", billing_address="Avenida da Liberdade 9", tax_id=""
    )
    SignIn.objects.create(user=other.user, ip_address="203.0.113.7")
    SignIn.objects.create(user=student.user, ip_address="192.0.2.1")

    text = student_client.get(URL).content.decode()

    assert 'value="Costa"' not in text and "Avenida da Liberdade" not in text and "bruno@example.com" not in text
    assert "203.0.113.7" not in text and "192.0.2.1" in text


def test_a_staff_member_may_open_it_as_student_view_lets_anyone_signed_in(client, db):
    # portal.student.access.student_view's rule: anyone signed in; the header offers it to students only.
    staff = make_staff()
    client.force_login(staff)

    response = client.get(URL)

    assert response.status_code == 200
    assert f'<a href="{URL}">Account</a>' not in response.content.decode()


def test_the_page_keeps_to_a_query_budget(student_client, student, django_assert_max_num_queries):
    for number in range(10):
        SignIn.objects.create(user=student.user, ip_address=f"192.0.2.{number}")
    credit(student, 600)

    # The session and the user, then one query each: the account, the email opt-outs, the sign-ins,
    # and automatic top-up's settings, the packages on sale and the cards it may charge.
    with django_assert_max_num_queries(8):
        assert student_client.get(URL).status_code == 200


# Name, billing address and tax number


def test_the_details_form_saves_name_address_and_tax_number(student_client, student):
    response = student_client.post(DETAILS, details(tax_id=f"PT {VALID_NIF[:3]} {VALID_NIF[3:6]} {VALID_NIF[6:]}"))

    assert response.status_code == 302 and response["Location"] == f"{URL}#details"
    account = reload(student)
    assert (account.user.first_name, account.user.last_name) == ("Ana", "Silva")
    assert account.user.display_name == "Ana Silva"
    assert account.billing_address == "Rua Augusta 1\nLisboa"
    assert account.tax_id == VALID_NIF  # the PT prefix and spaces dropped
    page = student_client.get(response["Location"]).content.decode()
    assert account_views.DETAILS_SAVED in page


def test_an_eu_vat_number_is_kept_with_its_country_prefix(student_client, student):
    student_client.post(DETAILS, details(tax_id="es b-1234567.8"))
    assert reload(student).tax_id == "ESB12345678"


def test_the_details_may_be_left_empty_and_receipts_then_name_the_email(student_client, student):
    profiles.billing_details_save(
        account=student, first_name="Ana", last_name="Silva", billing_address="Rua Augusta 1", tax_id=VALID_NIF
    )

    student_client.post(DETAILS, details(first_name="", last_name="  ", billing_address="", tax_id=""))

    account = reload(student)
    assert (account.user.first_name, account.user.last_name, account.billing_address, account.tax_id) == ("",) * 4
    assert account.user.display_name == "ana@example.com"


@pytest.mark.parametrize(
    "tax_id",
    [
        "123456780",  # a NIF with the wrong check digit
        "PT123456780",
        "12345678",  # eight digits
        "1234567890",  # ten digits
        "US123456789",  # not an EU country
        "XX12",
        "ES",  # a prefix alone
        "hello",
    ],
)
def test_a_bad_tax_number_is_refused_with_a_clear_message_and_nothing_changes(student_client, student, tax_id):
    response = student_client.post(DETAILS, details(tax_id=tax_id))

    assert response.status_code == 200
    text = response.content.decode()
    assert profiles.TAX_ID_INVALID in text
    assert "field-invalid" in text
    account = reload(student)
    assert (account.user.last_name, account.billing_address, account.tax_id) == ("", "", "")


def test_an_address_too_long_is_refused_and_nothing_changes(student_client, student):
    response = student_client.post(DETAILS, details(billing_address="x" * 301))

    assert "Ensure this value has at most 300 characters (it has 301)." in response.content.decode()
    assert reload(student).billing_address == ""


def test_under_htmx_the_details_section_comes_back_in_place(student_client, student):
    response = student_client.post(DETAILS, details(tax_id=VALID_NIF), headers=HTMX)

    text = response.content.decode()
    assert response.status_code == 200
    assert text.lstrip().startswith('<section id="details"') and "<html" not in text
    assert account_views.DETAILS_SAVED in text and f'value="{VALID_NIF}"' in text


def test_under_htmx_a_refused_details_form_keeps_what_was_typed(student_client, student):
    response = student_client.post(DETAILS, details(tax_id="123456780"), headers=HTMX)

    text = response.content.decode()
    assert text.lstrip().startswith('<section id="details"')
    assert profiles.TAX_ID_INVALID in text and 'value="123456780"' in text and 'value="Silva"' in text
    assert account_views.DETAILS_SAVED not in text


# The low-balance reminder level


def test_the_reminder_form_saves_hours_and_minutes(student_client, student):
    response = student_client.post(REMINDER, {"hours": "1", "minutes": "15"})

    assert response.status_code == 302 and response["Location"] == f"{URL}#reminder"
    assert reload(student).low_balance_threshold_minutes == 75
    page = student_client.get(URL).content.decode()
    assert account_views.REMINDER_SAVED % {"level": "1.25 h"} in page


def test_zero_hours_zero_minutes_turns_the_reminder_off(student_client, student):
    response = student_client.post(REMINDER, {"hours": "0", "minutes": "0"}, headers={"HX-Request": "true"})

    assert reload(student).low_balance_threshold_minutes == 0
    assert account_views.REMINDER_OFF in response.content.decode()


def test_the_highest_level_is_200_hours(student_client, student):
    student_client.post(REMINDER, {"hours": "200", "minutes": "0"})
    assert reload(student).low_balance_threshold_minutes == 200 * 60


@pytest.mark.parametrize(
    ("hours", "minutes", "message"),
    [
        ("-1", "0", profiles.LEVEL_OUT_OF_RANGE),
        ("0", "-5", str(account_views.LowBalanceLevelForm.base_fields["minutes"].error_messages["min_value"])),
        ("1", "61", "Enter 0 to 59 minutes; put whole hours in the hours box."),
        ("1", "60", "Enter 0 to 59 minutes; put whole hours in the hours box."),
        ("201", "0", profiles.LEVEL_OUT_OF_RANGE),
        ("200", "1", profiles.LEVEL_OUT_OF_RANGE),
        ("1.5", "0", "Enter a whole number."),
        ("", "30", "This field is required."),
    ],
)
def test_a_bad_level_is_refused_with_a_clear_message_and_nothing_changes(
    student_client, student, hours, minutes, message
):
    response = student_client.post(REMINDER, {"hours": hours, "minutes": minutes})

    assert response.status_code == 200
    assert message in response.content.decode()
    assert reload(student).low_balance_threshold_minutes == 120


def test_the_level_service_refuses_out_of_range_minutes(student):
    for minutes in (-1, 200 * 60 + 1):
        with pytest.raises(AccountDetailsInvalid):
            profiles.low_balance_level_set(account=student, minutes=minutes)
    assert reload(student).low_balance_threshold_minutes == 120


def test_a_student_changing_their_level_writes_no_audit_entry(student_client, student):
    student_client.post(REMINDER, {"hours": "3", "minutes": "0"})
    assert not AuditEntry.objects.exists()


def test_a_staff_change_of_the_level_is_audited_with_before_and_after(student):
    staff = make_staff()

    profiles.low_balance_level_set(
        account=student, minutes=300, actor=staff, reason="Asked by phone", ip_address="192.0.2.9"
    )

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.account_id, entry.reason) == (
        staff,
        "account.low_balance",
        student.pk,
        "Asked by phone",
    )
    assert entry.before == {"low_balance_threshold_minutes": 120}
    assert entry.after == {"low_balance_threshold_minutes": 300}
    assert entry.ip_address == "192.0.2.9"


def test_a_staff_change_of_the_level_needs_a_reason(student):
    with pytest.raises(ReasonRequired):
        profiles.low_balance_level_set(account=student, minutes=300, actor=make_staff(), reason="  ")
    assert reload(student).low_balance_threshold_minutes == 120
    assert not AuditEntry.objects.exists()


# What the level does to the alert scan and the dashboard


def balance_alerts(account):
    return set(
        Notification.objects.filter(recipient=account.user, resolved_at__isnull=True).values_list("kind", flat=True)
    )


def test_a_higher_level_makes_the_scan_remind_sooner(student):
    credit(student, 600)
    use(student, 400)  # 200 minutes left: above the default 2 h
    notifications.alerts_scan()
    assert Notification.Kind.LOW_BALANCE not in balance_alerts(student)

    profiles.low_balance_level_set(account=student, minutes=240)
    notifications.alerts_scan()

    assert Notification.Kind.LOW_BALANCE in balance_alerts(student)


def test_a_level_of_zero_sends_no_low_balance_reminder(student):
    profiles.low_balance_level_set(account=student, minutes=0)
    credit(student, 600)
    use(student, 590)

    notifications.alerts_scan()

    assert balance_alerts(student) == set()


def test_a_level_of_zero_still_says_when_no_hours_are_left_until_the_next_purchase(student):
    # Having no hours left is news at any level: only the reminder before it is turned off.
    profiles.low_balance_level_set(account=student, minutes=0)
    credit(student, 600)
    use(student, 600)

    notifications.alerts_scan()
    notifications.alerts_scan()  # the next scan must not take it back: 0 h is not "back above the level"

    assert balance_alerts(student) == {Notification.Kind.BALANCE_DEPLETED}
    credit(student, 60)
    notifications.alerts_scan()
    assert balance_alerts(student) == set()


def test_the_dashboard_quotes_the_new_level(student_client, student):
    credit(student, 600)
    use(student, 420)  # 3 h left
    student_client.post(REMINDER, {"hours": "4", "minutes": "30"})

    text = student_client.get(reverse("student:dashboard")).content.decode()

    assert "below your reminder level of 4.5 h" in text


# Email alert choices, now a section of the account page


def test_the_old_email_settings_address_opens_the_section(student_client):
    response = student_client.get(ALERTS)
    assert response.status_code == 302 and response["Location"] == f"{URL}#alerts"


def test_the_email_choices_save_from_the_account_page(student_client, student):
    response = student_client.post(ALERTS, {"emailed": ["payment_failed"]}, headers={"HX-Request": "true"})

    text = response.content.decode()
    assert text.lstrip().startswith('<section id="alerts"')
    assert account_views.ALERTS_SAVED in text
    assert re.search(r'value="payment_failed" id="id_emailed_\d+" checked>', text)
    off = set(EmailOptOut.objects.filter(user=student.user).values_list("kind", flat=True))
    assert "low_balance" in off and "payment_failed" not in off


def test_the_email_choices_offer_only_a_students_kinds(student_client):
    text = student_client.get(URL).content.decode()
    offered = set(re.findall(r'name="emailed" value="(\w+)"', text))
    assert offered and all(not kind.startswith("staff_") for kind in offered)


def test_an_unknown_email_choice_is_refused_and_nothing_changes(student_client, student):
    response = student_client.post(ALERTS, {"emailed": ["staff_new_dispute"]})

    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()
    assert not EmailOptOut.objects.filter(user=student.user).exists()
