"""The Portuguese catalogue is complete: every text the code and templates mark for translation has
a Portuguese translation that is neither missing nor fuzzy, the catalogue holds nothing the code no
longer says, and the compiled catalogue the site loads matches it (`make messages` re-extracts,
`make catalogues` compiles)."""

import gettext
import io
import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

ROOT = Path(settings.BASE_DIR)
CATALOGUE = ROOT / "locale" / "pt_PT" / "LC_MESSAGES" / "django.po"
SOURCES = ("portal", "billing", "alerts", "templates")


def catalogue_entries(path):
    # A freshly extracted catalogue has gettext's placeholder plural header, which Babel cannot read.
    text = path.read_text().replace("nplurals=INTEGER; plural=EXPRESSION;", "nplurals=2; plural=(n != 1);")
    return {(message.context, _msgid(message)): message for message in read_po(io.StringIO(text)) if message.id}


def _msgid(message):
    return message.id[0] if isinstance(message.id, tuple) else message.id


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    """What `makemessages` finds in the code now, extracted into a copy of the sources (tests left out)."""
    copy = tmp_path_factory.mktemp("sources")
    for source in SOURCES:
        shutil.copytree(ROOT / source, copy / source, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.pyc"))
    (copy / "locale").mkdir()
    with pytest.MonkeyPatch.context() as patch, override_settings(LOCALE_PATHS=[copy / "locale"]):
        patch.chdir(copy)
        call_command("makemessages", locale=["pt_PT"], verbosity=0)
    return catalogue_entries(copy / "locale" / "pt_PT" / "LC_MESSAGES" / "django.po")


@pytest.fixture(scope="module")
def committed():
    return catalogue_entries(CATALOGUE)


def describe(keys):
    return "\n".join(
        f"  {msgid!r}" + (f" (context {context!r})" if context else "")
        for context, msgid in sorted(keys, key=lambda key: (key[0] or "", key[1]))
    )


def test_every_text_the_code_marks_is_in_the_catalogue(extracted, committed):
    missing = extracted.keys() - committed.keys()
    assert not missing, f"run `make messages` and translate:\n{describe(missing)}"


def test_the_catalogue_holds_nothing_the_code_no_longer_says(extracted, committed):
    obsolete = committed.keys() - extracted.keys()
    assert not obsolete, f"run `make messages` to drop:\n{describe(obsolete)}"


def test_every_entry_is_translated_and_none_is_fuzzy(committed):
    untranslated = {key for key, message in committed.items() if not _translated(message)}
    fuzzy = {key for key, message in committed.items() if message.fuzzy}
    assert not untranslated, f"untranslated in {CATALOGUE.name}:\n{describe(untranslated)}"
    assert not fuzzy, f"fuzzy (check, then remove the flag):\n{describe(fuzzy)}"


def test_the_compiled_catalogue_is_the_committed_one(committed):
    compiled = CATALOGUE.with_suffix(".mo")
    assert compiled.exists(), "run `make catalogues`"
    with compiled.open("rb") as mo:
        translations = gettext.GNUTranslations(mo)
    stale = set()
    for (context, msgid), message in committed.items():
        expected = message.string[0] if isinstance(message.string, tuple) else message.string
        looked_up = translations.pgettext(context, msgid) if context else translations.gettext(msgid)
        if looked_up != expected:
            stale.add((context, msgid))
    assert not stale, f"the .mo is older than the .po: run `make catalogues`\n{describe(stale)}"


def _translated(message):
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(strings)
