"""An alert's text is built in its reader's language from the facts stored with it (`params`); the
text as written when raised stays in its columns, under new names (the columns keep theirs)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0004_operations_alerts"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RenameField(model_name="notification", old_name="title", new_name="stored_title"),
                migrations.RenameField(model_name="notification", old_name="body", new_name="stored_body"),
                migrations.AlterField(
                    model_name="notification",
                    name="stored_title",
                    field=models.CharField(db_column="title", max_length=200),
                ),
                migrations.AlterField(
                    model_name="notification",
                    name="stored_body",
                    field=models.TextField(db_column="body"),
                ),
            ],
        ),
        migrations.AddField(
            model_name="notification",
            name="params",
            field=models.JSONField(blank=True, null=True),
        ),
    ]
