"""Every staff surface asks for the second factor, and second factors are sealed at rest.

The Django admin opens on the console's rule (TOTP set up and a code given in this session), never
on a password alone; nobody reads a TOTP secret in it; TOTP secrets and recovery seeds are stored
sealed under MFA_ENCRYPTION_KEYS, which rotate without locking anyone out."""

from datetime import timedelta

import pytest
import time_machine
from allauth.mfa.models import Authenticator
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP
from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import call_command
from django.urls import reverse

from billing.tests.builders import PASSWORD, TOTP_SECRET, make_console_user, totp_code
from conftest import console_sign_in
from portal.mfa import FERNET_PREFIX, authenticators_reseal
from portal.models import User

pytestmark = pytest.mark.django_db


def make_superuser(email="root@example.com"):
    """What `createsuperuser` makes: a staff superuser with a password and nothing else."""
    return User.objects.create_superuser(email, PASSWORD)


def make_operator():
    """A superuser with TOTP set up, as an operator of the admin should be."""
    user = make_console_user("ops@example.com")
    user.is_superuser = True
    user.save()
    return user


def password_only_client(client, user):
    client.force_login(user)
    return client


class TestTheAdminAsksForTheSecondFactor:
    def test_a_superuser_without_totp_is_sent_to_set_it_up(self, client):
        admin_client = password_only_client(client, make_superuser())
        for url in [reverse("admin:index"), reverse("admin:portal_user_changelist"), reverse("admin:auth_group_add")]:
            response = admin_client.get(url)
            assert response.status_code == 302, url
            assert response["Location"] == reverse("mfa_activate_totp"), url

    def test_nobody_is_promoted_into_finance_with_a_password_alone(self, client):
        target = User.objects.create_user("someone@example.com", PASSWORD)
        admin_client = password_only_client(client, make_superuser())
        finance = Group.objects.get(name="Finance")
        admin_client.post(
            reverse("admin:portal_user_change", args=[target.pk]),
            {"email": target.email, "is_active": "on", "is_staff": "on", "groups": [finance.pk]},
        )
        target.refresh_from_db()
        assert not target.is_staff and not target.groups.exists()

    def test_totp_set_up_but_not_given_in_this_session_asks_for_a_code(self, client):
        user = make_operator()
        response = password_only_client(client, user).get(reverse("admin:index"))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("mfa_reauthenticate"))
        assert "next=%2Fadmin%2F" in response["Location"]

    def test_a_code_given_in_this_session_opens_it(self, client):
        user = make_operator()
        response = console_sign_in(client, user).get(reverse("admin:index"))
        assert response.status_code == 200
        assert "Tutoring Hours administration" in response.content.decode()

    def test_signing_out_needs_no_second_factor(self, client):
        admin_client = password_only_client(client, make_superuser())
        response = admin_client.post(reverse("admin:logout"))
        assert response.status_code == 200
        assert "_auth_user_id" not in admin_client.session


class TestTheAuthenticatorAdminShowsNoSecret:
    def test_the_change_page_shows_that_a_factor_exists_not_its_data(self, client):
        user = make_operator()
        admin_client = console_sign_in(client, user)
        totp = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
        page = admin_client.get(reverse("admin:mfa_authenticator_change", args=[totp.pk])).content.decode()
        assert "ops@example.com" in page
        assert TOTP_SECRET not in page and totp.data["secret"] not in page and "secret" not in page.lower()

    def test_it_cannot_be_added_or_edited_only_removed(self, client):
        user = make_operator()
        admin_client = console_sign_in(client, user)
        totp = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP)
        assert admin_client.get(reverse("admin:mfa_authenticator_add")).status_code == 403
        admin_client.post(reverse("admin:mfa_authenticator_change", args=[totp.pk]), {"type": "recovery_codes"})
        totp.refresh_from_db()
        assert totp.type == Authenticator.Type.TOTP
        admin_client.post(reverse("admin:mfa_authenticator_delete", args=[totp.pk]), {"post": "yes"})
        assert not Authenticator.objects.filter(pk=totp.pk).exists()


class TestSecondFactorsAreSealedAtRest:
    def test_a_totp_secret_is_stored_sealed_and_still_signs_in(self, client, settings):
        user = make_console_user("fiona@example.com")
        stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
        assert stored != TOTP_SECRET and stored.startswith(FERNET_PREFIX)
        assert Fernet(settings.MFA_ENCRYPTION_KEYS[0]).decrypt(stored.encode()).decode() == TOTP_SECRET
        with pytest.raises(InvalidToken):  # SECRET_KEY-derived or any other key opens nothing
            Fernet(Fernet.generate_key()).decrypt(stored.encode())
        console_sign_in(client, user)  # allauth opens it through our adapter to check the code

    def test_recovery_codes_seed_is_stored_sealed(self):
        user = make_console_user("fiona@example.com")
        codes = RecoveryCodes.activate(user)
        seed = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES).data["seed"]
        assert seed.startswith(FERNET_PREFIX)
        assert len(codes.generate_codes()) > 0 and codes.validate_code(codes.get_unused_codes()[0])

    def test_a_key_rotates_without_locking_anyone_out(self, client, settings):
        user = make_console_user("fiona@example.com")
        old_key, new_key = settings.MFA_ENCRYPTION_KEYS[0], Fernet.generate_key().decode()
        settings.MFA_ENCRYPTION_KEYS = [new_key, old_key]  # step 1: the new key in front
        console_sign_in(client, user)  # still sealed under the old key: it opens
        client.logout()
        call_command("mfa_rotate_key")  # step 2
        stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
        Fernet(new_key).decrypt(stored.encode())
        settings.MFA_ENCRYPTION_KEYS = [new_key]  # step 3: the old key removed
        cache.clear()  # allauth refuses the same code twice in its 30 s; this sign-in reuses it
        console_sign_in(client, user)

    def test_secrets_stored_in_the_clear_before_encryption_get_sealed(self, settings):
        user = make_console_user("fiona@example.com")
        Authenticator.objects.filter(user=user).update(data={"secret": TOTP_SECRET})
        assert authenticators_reseal(Authenticator) == 1
        stored = Authenticator.objects.get(user=user).data["secret"]
        assert Fernet(settings.MFA_ENCRYPTION_KEYS[0]).decrypt(stored.encode()).decode() == TOTP_SECRET
        assert authenticators_reseal(Authenticator) == 0, "sealing is idempotent"

    def test_a_secret_sealed_under_a_lost_key_is_never_sealed_twice(self, settings):
        user = make_console_user("fiona@example.com")
        settings.MFA_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key was dropped too early
        with pytest.raises(Exception, match="put the old key back"):
            authenticators_reseal(Authenticator)
        assert Authenticator.objects.get(user=user).data["secret"].count(FERNET_PREFIX) == 1

    def test_a_totp_activated_through_allauth_is_sealed(self):
        user = User.objects.create_user("new.staff@example.com", PASSWORD, is_staff=True)
        TOTP.activate(user, TOTP_SECRET)
        assert TOTP(Authenticator.objects.get(user=user)).validate_code(totp_code())
        assert Authenticator.objects.get(user=user).data["secret"].startswith(FERNET_PREFIX)


def test_a_change_in_the_admin_needs_a_code_as_recent_as_a_refund(client):
    user = make_operator()
    target = User.objects.create_user("someone@example.com", PASSWORD)
    admin_client = console_sign_in(client, user)
    with time_machine.travel(timedelta(minutes=16)):
        assert admin_client.get(reverse("admin:portal_user_change", args=[target.pk])).status_code == 200
        response = admin_client.post(
            reverse("admin:portal_user_change", args=[target.pk]),
            {"email": target.email, "is_active": "on", "is_staff": "on"},
        )
    assert response["Location"].startswith(reverse("mfa_reauthenticate"))
    target.refresh_from_db()
    assert not target.is_staff
