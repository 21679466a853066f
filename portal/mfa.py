"""Second factors at rest: allauth keeps each TOTP secret and recovery-code seed in the database, and
calls its MFA adapter to seal and open them. Ours seals them with Fernet (AES-128-CBC + HMAC-SHA256)
under MFA_ENCRYPTION_KEYS, a key of its own: a leaked SECRET_KEY or database dump alone gives no
staff member's second factor away.

The setting is a list: the first key seals, every key opens, so a key is rotated without locking
anyone out (docs/security.md): add the new key in front, run `manage.py mfa_rotate_key`, drop the old.
"""

from allauth.mfa.adapter import DefaultMFAAdapter
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

# Where allauth keeps sealed values, per authenticator type: single values, and lists of them.
SEALED_VALUES = {"totp": ["secret"], "recovery_codes": ["seed"]}
SEALED_LISTS = {"recovery_codes": ["migrated_codes"]}
# Every Fernet token starts with its version byte, 0x80, which is "gAAAAA" in URL-safe base64.
FERNET_PREFIX = "gAAAAA"


def encryption_keys():
    # The settings refuse to start without a key, or with one that is not a Fernet key.
    return [Fernet(key) for key in settings.MFA_ENCRYPTION_KEYS]


def keyring():
    return MultiFernet(encryption_keys())


class MFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text):
        return keyring().encrypt(text.encode()).decode()

    def decrypt(self, encrypted_text):
        return keyring().decrypt(encrypted_text.encode()).decode()


def authenticator_data_reseal(kind, data):
    """The same data with every secret sealed under the first key: values sealed under an older key
    are re-sealed, values stored in the clear (before encryption was on) are sealed. Returns the new
    data, or None when nothing changed."""
    keys = encryption_keys()
    changed = dict(data)
    for field in SEALED_VALUES.get(kind, []):
        if field in data:
            changed[field] = _reseal(keys, data[field])
    for field in SEALED_LISTS.get(kind, []):
        if data.get(field) is not None:
            changed[field] = [_reseal(keys, value) for value in data[field]]
    return changed if changed != data else None


def _reseal(keys, value):
    newest, token = keys[0], value.encode()
    try:
        newest.decrypt(token)
        return value
    except InvalidToken:
        pass
    try:
        plain = MultiFernet(keys).decrypt(token)
    except InvalidToken:
        if value.startswith(FERNET_PREFIX):
            raise ImproperlyConfigured(
                "A second factor is sealed under a key missing from MFA_ENCRYPTION_KEYS: put the old key back."
            ) from None
        # A value from before encryption was on, stored in the clear (base32 or hex, never a token).
        plain = token
    return newest.encrypt(plain).decode()


def authenticators_reseal(authenticator_model):
    """Re-seal every stored second factor under the first key (the rotation step, and the migration
    that sealed the values stored before encryption). Returns how many authenticators changed."""
    changed = 0
    for pk in authenticator_model.objects.values_list("pk", flat=True).order_by("pk"):
        # Row by row, locked: a recovery code used meanwhile must not have its use undone.
        with transaction.atomic():
            authenticator = authenticator_model.objects.select_for_update().filter(pk=pk).first()
            if authenticator is None:
                continue  # removed meanwhile
            data = authenticator_data_reseal(authenticator.type, authenticator.data)
            if data:
                authenticator.data = data
                authenticator.save(update_fields=["data"])
                changed += 1
    return changed
