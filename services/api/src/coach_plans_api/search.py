"""Full-text search helpers around `repository.search_plans`: safe queries and highlighted snippets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the repository imports this module
    from coach_plans_api.repository import PlanRow, Shown

# The database wraps each matched word in these (private-use characters, never typed by a coach);
# `parse_snippet` turns them into offsets, so the snippet itself stays plain text.
MARK_START, MARK_END = "\ue000", "\ue001"
MAX_TERMS = 32  # a longer query adds cost and no meaning
_TERM = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A matching plan as the API shows it (with its charts and tickers in order); `snippet[start:end]`
    for each highlight is a matched word; higher score is better."""

    shown: Shown
    snippet: str
    highlights: tuple[tuple[int, int], ...]
    score: float

    @property
    def plan(self) -> PlanRow:
        return self.shown.plan


def fts5_words(query: str) -> list[str]:
    """The words of any user text that an FTS5 query requires."""
    return _TERM.findall(query)[:MAX_TERMS]


def fts5_query(query: str) -> str:
    """Any user text as an FTS5 query: each word quoted (so `"`, `*`, `NEAR`, `OR`, `(`, `^` are plain
    text), all required. Empty when the text has no word."""
    return " ".join(f'"{term}"' for term in fts5_words(query))


def postgres_query(query: str) -> str:
    """Any user text for `websearch_to_tsquery`, which accepts every string except one with NUL."""
    terms = query.replace("\x00", " ").split()
    return " ".join(terms[: MAX_TERMS * 2])


def parse_snippet(marked: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Strip the database's highlight marks; return the plain snippet and the highlighted spans."""
    plain: list[str] = []
    highlights: list[tuple[int, int]] = []
    length, opened = 0, None
    for part in re.split(f"([{MARK_START}{MARK_END}])", marked):
        if part == MARK_START:
            opened = length
        elif part == MARK_END:
            if opened is not None and length > opened:
                highlights.append((opened, length))
            opened = None
        else:
            plain.append(part)
            length += len(part)
    return "".join(plain), tuple(highlights)
