"""What an enrolled name may hold: valid UTF-8, something visible, nothing that hides how it displays.

A name is shown to people (``/identify``'s answer, the page, the audit log), so two names that display alike must
not be told apart by characters nobody sees, and none may reorder or hide text around it. Refused:

- control characters and line or paragraph separators;
- Unicode's bidirectional controls (the "Trojan Source" set) and its default-ignorable code points (zero-width
  spaces, soft hyphens, fillers, variation selectors, tags, ...), except where a script or an emoji needs them
  (``_needed_here``): ZWJ and ZWNJ after a letter, a mark or an emoji (last, only after a mark: a virama), but
  never after a letter of a script that does not join (Latin, Greek, Cyrillic, CJK, ...: nothing to join); a
  variation selector after the character it varies; Mongolian's selectors and vowel separator after a Mongolian
  letter; the tags of a subdivision flag (England, Scotland, Wales);
- other invisible format characters (the interlinear annotation marks), private-use and non-character code points;
- names that draw nothing: only spaces, marks, joiners or blank glyphs.

Unassigned code points stay: a newer emoji is one to this Python.
"""

from __future__ import annotations

import re
import unicodedata

from app.errors import InvalidParameter
from deepcanvas.schemas import IDENTITY_NAME_MAX

# Each with what the refusal calls it: the bidirectional controls (Unicode's Bidi_Control) and the zero-width
# characters that join nothing.
NAMED_INVISIBLE = {
    **dict.fromkeys(
        ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))],
        "a bidirectional control",
    ),
    **dict.fromkeys(["\u200b", "\u2060", "\ufeff"], "a zero-width character"),
}
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt), and the blank braille cell, which draws
# nothing either
IGNORABLE = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x2800, 0x2800),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# format characters that draw a sign of their own (Arabic and Syriac number and abbreviation marks)
DRAWN_FORMAT = {*range(0x0600, 0x0606), 0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD}
JOINERS = {"\u200c", "\u200d"}  # ZWNJ and ZWJ
# Scripts whose letters never join or shape with a neighbour, so a joiner beside them changes nothing that shows
# (the first word of a letter's Unicode name)
UNJOINED_SCRIPTS = {
    "LATIN",
    "GREEK",
    "CYRILLIC",
    "ARMENIAN",
    "GEORGIAN",
    "HEBREW",
    "CJK",
    "HIRAGANA",
    "KATAKANA",
    "HANGUL",
    "FULLWIDTH",
    "HALFWIDTH",
}
# a subdivision flag: the black flag, 2 to 6 tag letters or digits, the cancel tag
FLAG = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{2,6}\U000e007f")


def _ignorable(character: str) -> bool:
    code = ord(character)
    return any(low <= code <= high for low, high in IGNORABLE)


def _unjoined_base(name: str, index: int) -> bool:
    """Whether the character before ``name[index]``, its marks skipped, is a letter of a script that never joins."""
    base = index - 1
    while base > 0 and unicodedata.category(name[base])[0] == "M":
        base -= 1
    letter = name[base]
    return unicodedata.category(letter)[0] == "L" and unicodedata.name(letter, "").split(" ")[0] in UNJOINED_SCRIPTS


def _needed_here(name: str, index: int, flags: list[range]) -> bool:
    """Whether the ignorable or format character at ``name[index]`` is one a script or an emoji needs there."""
    code, before = ord(name[index]), name[index - 1] if index > 0 else ""
    if code in DRAWN_FORMAT:
        return True
    if not before:
        return False
    if name[index] in JOINERS:  # after a letter, a mark or an emoji; last only after a mark (a virama: Malayalam
        # chillu letters, Bengali khanda ta), which it changes: after anything else it would join nothing
        allowed = "M" if index == len(name) - 1 else "LMS"
        if _unjoined_base(name, index):
            return False
        return (unicodedata.category(before)[0] in allowed and not _ignorable(before)) or before == "\ufe0f"
    if 0xFE00 <= code <= 0xFE0F:  # a variation selector: after the character it varies (emoji, keycap digits)
        return unicodedata.category(before)[0] in "LNPS" and not _ignorable(before)
    if 0xE0100 <= code <= 0xE01EF:  # an ideographic variation selector
        return unicodedata.name(before, "").startswith("CJK")
    if 0x180B <= code <= 0x180F:  # Mongolian's free variation selectors and vowel separator
        return 0x1800 <= ord(before) <= 0x18AF
    return any(index in span for span in flags)  # a tag, inside a subdivision flag


def _hidden_kind(name: str, index: int, flags: list[range]) -> str | None:
    """Why ``name[index]`` hides how the name displays, or None."""
    character = name[index]
    if character in NAMED_INVISIBLE:
        return NAMED_INVISIBLE[character]
    code, category = ord(character), unicodedata.category(character)
    if category == "Co" or 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:
        return "a private-use or non-character code point"
    if category != "Cf" and not _ignorable(character):
        return None
    if _needed_here(name, index, flags):
        return None
    return "an invisible formatting character" if category == "Cf" else "an invisible character"


def _shows_something(name: str) -> bool:
    """Whether a character of ``name`` draws a mark of its own: a letter, digit, punctuation or symbol that is not
    default-ignorable (fillers)."""
    return any(unicodedata.category(c)[0] in "LNPS" and not _ignorable(c) for c in name)


def check_name(name: str) -> str:
    """The name without surrounding spaces, or 422 saying why it cannot be one (the module docstring); 1 to
    ``IDENTITY_NAME_MAX`` characters. A NUL is also what PostgreSQL's text refuses.

    Bytes that were not UTF-8 arrive as lone surrogates (``form_text``): valid UTF-8 never decodes to one.
    """
    if any(unicodedata.category(character) == "Cs" for character in name):
        raise InvalidParameter("name: not valid UTF-8")
    cleaned = name.strip()
    if len(cleaned) > IDENTITY_NAME_MAX:
        raise InvalidParameter(f"name: must be at most {IDENTITY_NAME_MAX} characters")
    if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in cleaned):
        raise InvalidParameter("name: must not contain control characters (tabs, line breaks, NUL)")
    flags = [range(*match.span()) for match in FLAG.finditer(cleaned)]
    for index, character in enumerate(cleaned):
        kind = _hidden_kind(cleaned, index, flags)
        if kind is not None:
            raise InvalidParameter(f"name: contains U+{ord(character):04X} ({kind})")
    if not _shows_something(cleaned):
        raise InvalidParameter("name: must not be blank")
    return cleaned
