"""Rewriting what names a person in records others wrote, for an erasure at their request (GDPR
article 17): the texts that replace their email and names, and the rows that change. Imports no
model, so that billing.models can use it too."""

import re

BATCH = 200


def rows_rewritten(rows, fields, rewrite):
    """The rows of the queryset `rows` whose `fields` change when each is passed through `rewrite`,
    with the new values set, read in chunks (only their id and those fields): the caller writes them
    with bulk_update, so that a second run writes nothing."""
    for row in rows.only("pk", *fields).iterator(chunk_size=BATCH):
        values = {name: getattr(row, name) for name in fields}
        rewritten = {name: rewrite(value) for name, value in values.items()}
        if rewritten != values:
            for name, value in rewritten.items():
                setattr(row, name, value)
            yield row


def words_replaced(value, *, replacements):
    """`value` (a text, or JSON data at any depth) with each text of `replacements` replaced by what
    it maps to, case-insensitively and as whole words only, so that erasing "Ana" leaves "Analysis"
    alone, and never inside an email address, so that it leaves Finance's ana.costa@example.com as
    it is. Dictionary keys stay as they are."""
    wanted = {text.lower(): replacement for text, replacement in replacements.items() if text}
    if not wanted:
        return value
    words = "|".join(re.escape(text) for text in sorted(wanted, key=len, reverse=True))
    # Not after a letter, digit, "." or "@", nor before one, "@", or a "." that continues a word:
    # a sentence's full stop still ends a name, a dot of an address does not.
    pattern = re.compile(rf"(?<![\w.@])(?:{words})(?![\w@]|\.\w)", re.IGNORECASE)

    def replacement(found):
        text = found.group(0)
        if text.lower() in wanted:
            return wanted[text.lower()]
        # A letter whose lower case differs from what IGNORECASE matched (a Turkish dotted I).
        return next(new for old, new in wanted.items() if re.fullmatch(re.escape(old), text, re.IGNORECASE))

    return _replaced(value, pattern, replacement)


def _replaced(value, pattern, replacement):
    if isinstance(value, str):
        return pattern.sub(replacement, value)
    if isinstance(value, dict):
        return {key: _replaced(item, pattern, replacement) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item, pattern, replacement) for item in value]
    return value
