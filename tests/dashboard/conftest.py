"""The dashboard suite: the real app with the dashboard router on `/`, and an HTML reader."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Card:
    coach: str
    plan_id: str | None
    text: str = ""
    plan_text: str = ""
    images: list[str] = field(default_factory=list)
    history: list[str] = field(default_factory=list)
    edited: bool = False


class DashboardPage(HTMLParser):
    """The cards of a dashboard page (`section.card`), read the way a person would read them."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cards: dict[str, Card] = {}
        self.summary = ""
        self._card: Card | None = None
        self._in: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section" and "card" in classes:
            self._card = Card(coach=a["data-coach"] or "", plan_id=a.get("data-plan-id"))
            self.cards[self._card.coach] = self._card
        elif self._card is not None:
            if tag == "img":
                self._card.images.append(a["src"] or "")
            elif tag == "li" and "data-action" in a:
                self._card.history.append(a["data-action"] or "")
            elif "edited" in classes:
                self._card.edited = True
        if tag == "p" and "plan" in classes:
            self._in.append("plan")
        elif tag == "p" and a.get("id") == "summary":
            self._in.append("summary")
        elif tag == "p":
            self._in.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._card = None
        elif tag == "p" and self._in:
            self._in.pop()

    def handle_data(self, data: str) -> None:
        where = self._in[-1] if self._in else ""
        if where == "summary":
            self.summary += data
        if self._card is not None:
            self._card.text += data
            if where == "plan":
                self._card.plan_text += data
