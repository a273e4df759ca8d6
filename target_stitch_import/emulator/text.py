r"""Text the emulator writes to a terminal or a log: control characters escaped, widths measured.

Table names, property names and values come from clients. Written raw, a newline would
forge a line of the access log and ``\x1b[2J`` would clear the terminal of whoever runs
``show``. :func:`escape_controls` writes every control character (C0, DEL, C1), the Unicode
line and paragraph separators and the bidirectional controls (which reorder what follows
them) as a visible escape; :func:`display_width` measures text in terminal columns (East
Asian wide characters take two, combining marks none).
"""

from __future__ import annotations

import re
import unicodedata

#: DEL, the C1 controls, the line and paragraph separators, and the bidirectional marks,
#: embeddings, overrides and isolates: what JSON text may hold raw (it escapes the C0 controls
#: in strings, and outside strings holds only whitespace).
_BEYOND_C0 = "\\x7f-\\x9f\\u061c\\u200e\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069"
_RAW_IN_JSON = re.compile(f"[{_BEYOND_C0}]")
#: Characters written as escapes: the C0 controls and the above.
_SPECIAL = re.compile(f"[\\x00-\\x1f{_BEYOND_C0}]")
_SPECIAL_OR_BACKSLASH = re.compile(f"\\\\|{_SPECIAL.pattern}")
_SHORT_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_PLAIN_FIELD = re.compile(r'[^\s"=\\]+')


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"  # noqa: PLR2004


def escape_controls(text: str) -> str:
    r"""Return ``text`` on one line with nothing a terminal acts on.

    A backslash is doubled, so the result reads back unambiguously; newline, carriage return
    and tab become ``\n``, ``\r`` and ``\t``; other control characters ``\xNN``; the
    separators and bidirectional controls ``\uNNNN``.
    """
    return _SPECIAL_OR_BACKSLASH.sub(_escape, text)


def escape_raw_controls(text: str) -> str:
    """Return ``text`` with its control characters escaped as by :func:`escape_controls`.

    Backslashes stay as they are: for text already escaped, or the emulator's own.
    """
    return _SPECIAL.sub(_escape, text)


def escape_json_controls(text: str) -> str:
    r"""Return JSON text with the characters JSON leaves raw (DEL, C1...) as ``\uNNNN``.

    JSON already escapes C0 controls; the result is the same JSON value.
    """
    return _RAW_IN_JSON.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


def log_field(text: str) -> str:
    """Return a value for a ``name=value`` log field: escaped, and quoted unless plain.

    A value with a space, a quote, ``=`` or a backslash, or an empty one, is written as a
    double-quoted string, so that no value reads as another field.
    """
    if _PLAIN_FIELD.fullmatch(text) and not _SPECIAL.search(text):
        return text
    return '"' + escape_controls(text).replace('"', '\\"') + '"'


def _char_width(char: str) -> int:
    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def display_width(text: str) -> int:
    """Return how many terminal columns ``text`` (already escaped) takes."""
    if text.isascii():
        return len(text)
    return sum(map(_char_width, text))


def pad(text: str, width: int) -> str:
    """Return ``text`` followed by spaces up to ``width`` terminal columns."""
    return text + " " * (width - display_width(text))
