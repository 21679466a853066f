"""Seal the second factors stored in the clear before portal.mfa.MFAAdapter encrypted them."""

from django.db import migrations

from portal.mfa import authenticators_reseal


def seal(apps, schema_editor):
    authenticators_reseal(apps.get_model("mfa", "Authenticator"))


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0002_sign_ins"),
        ("mfa", "0003_authenticator_type_uniq"),
    ]

    # Unapplied, the values stay sealed: the adapter that opens them is settings, not schema.
    operations = [migrations.RunPython(seal, migrations.RunPython.noop)]
