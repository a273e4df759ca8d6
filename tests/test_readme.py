"""README.md stays one document: every section once (an edit that copies sections fails here)."""

from __future__ import annotations

import collections
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def headings(text: str) -> list[str]:
    """The Markdown headings of ``text`` (lines in code blocks are not)."""
    found, in_code = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            found.append(line.strip())
    return found


def test_every_section_heading_appears_once() -> None:
    counts = collections.Counter(headings(README.read_text(encoding="utf-8")))
    repeated = [heading for heading, count in counts.items() if count > 1]
    assert not repeated, f"sections written twice: {repeated}"
