"""The dashboard's level chips and its search page, over HTTP through the real app."""

from __future__ import annotations

import html
import re

import pytest
from fastapi.testclient import TestClient

from tests.conftest import PutPlan

DAY = "2020-03-10"


def chips(page: str) -> list[tuple[str, str]]:
    levels = re.findall(r'<ul class="levels" aria-label="Levels">(.*?)</ul>', page)
    return [
        (bias, html.unescape(text))
        for block in levels
        for bias, text in re.findall(r'<li data-bias="(\w+)">([^<]*)</li>', block)
    ]


def hits(page: str) -> list[tuple[str, str]]:
    """(coach, snippet with the matched words in [brackets]) of each result."""
    found = re.findall(r'<article class="hit" data-coach="(\w+)">.*?<p class="snippet">(.*?)</p>', page, re.S)
    return [
        (coach, html.unescape(snippet.replace("<mark>", "[").replace("</mark>", "]")))
        for coach, snippet in found
    ]


def test_cards_show_each_tickers_levels(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan("coach_d", DAY, text="NVDA long above 950, targets 968/985, stop 938; fade AMD below 158")
    put_plan("coach_i", DAY, text="SPY 600 puts, 590-595 is support", user_id="2")
    put_plan("coach_s", DAY, text="Sentiment only today", user_id="3")
    page = api_client.get(f"/?date={DAY}").text
    assert chips(page) == [
        ("long", "NVDA long · above 950 · T 968/985 · SL 938"),
        ("short", "AMD short · below 158"),
        ("short", "SPY short · S 590-595 · 600P"),
    ]
    coach_s = page.split('data-coach="coach_s"', 1)[1].split("</section>", 1)[0]
    assert 'class="levels"' not in coach_s


def test_search_page_highlights_matches_as_escaped_text(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan("coach_d", DAY, text="<b>VWAP</b> reclaim & <script>alert(1)</script> then VWAP reclaim again")
    put_plan("coach_i", "2020-03-09", text="NVDA above 950 after a vwap reclaim", user_id="2")
    put_plan("coach_s", DAY, text="nothing to see", user_id="3")
    response = api_client.get("/search", params={"q": "vwap reclaim"})
    assert response.status_code == 200
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "<script>" not in page
    assert "<b>" not in page
    assert hits(page) == [
        ("coach_d", "<b>[VWAP]</b> [reclaim] & <script>alert(1)</script> then [VWAP] [reclaim] again"),
        ("coach_i", "NVDA above 950 after a [vwap] [reclaim]"),
    ]
    assert '<a href="/?date=2020-03-09#coach_i">Coach I · Mar 9, 2020</a>' in page
    only_i = api_client.get("/search", params={"q": "vwap reclaim", "coach": "coach_i"}).text
    assert [coach for coach, _ in hits(only_i)] == ["coach_i"]
    assert '<option value="coach_i" selected>' in only_i
    assert "No plans match “squeeze”." in api_client.get("/search", params={"q": "squeeze"}).text


def test_search_page_pages_with_a_more_link(api_client: TestClient, put_plan: PutPlan) -> None:
    for day in range(1, 23):
        put_plan("coach_d", f"2020-01-{day:02d}", text=f"breakout watch day {day}")
    first = api_client.get("/search", params={"q": "breakout"}).text
    more = re.search(r'<a href="/search\?([^"]+)" rel="next">', first)
    assert more is not None
    second = api_client.get("/search?" + html.unescape(more.group(1))).text
    assert len(hits(first)) == 20
    assert len(hits(second)) == 2
    assert 'rel="next"' not in second
    assert {s for _, s in hits(first)}.isdisjoint(s for _, s in hits(second))


def test_dashboard_has_a_search_box(api_client: TestClient) -> None:
    page = api_client.get(f"/?date={DAY}").text
    assert '<form method="get" action="/search" role="search"><input type="search" name="q"' in page
    empty = api_client.get("/search").text
    assert "Type words to find in any coach" in empty
    assert 'class="hit"' not in empty


@pytest.mark.parametrize(
    ("params", "status"),
    [({"q": "x", "coach": "zz"}, 400), ({"q": "x" * 201}, 422), ({"q": "x", "cursor": "bad"}, 400)],
)
def test_search_page_bad_input(api_client: TestClient, params: dict[str, str], status: int) -> None:
    assert api_client.get("/search", params=params).status_code == status


def test_hostile_queries_render(api_client: TestClient, put_plan: PutPlan) -> None:
    put_plan("coach_d", DAY, text="NVDA long above 950")
    for query in ['"', "NEAR(NVDA", "nvda*", "<script>", "-", ":"]:
        response = api_client.get("/search", params={"q": query})
        assert response.status_code == 200, query
        assert "<script>" not in response.text
