"""Ticker tags: what is and is not a ticker, stored on every write, filterable over the API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from coach_plans_api.tickers import DEFAULT_WATCHLIST, extract_tickers, parse_watchlist
from tests.conftest import PutPlan

WATCHLIST = parse_watchlist(DEFAULT_WATCHLIST)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$NVDA above 950", ["NVDA"]),
        ("long $nvda and $Amd", ["NVDA", "AMD"]),
        ("NVDA above 950, QQQ weak", ["NVDA", "QQQ"]),
        ("($TSLA), $AAPL. $MSFT! $meta?", ["TSLA", "AAPL", "MSFT", "META"]),
        ("$BRK.B holding", ["BRK.B"]),
        ("I think A CEO said IT is OK FOMC day", []),
        ("nvda lower case without a cashtag is a word", []),
        ("$NVDA NVDA $nvda again NVDA", ["NVDA"]),
        ("paid US$100 and $5 fees, $TOOLONG", []),
        ("SPY/QQQ pair, SMH-led", ["SPY", "QQQ", "SMH"]),
        ("NVDA's run, AMDx not, XNVDA not", ["NVDA"]),
        ("$ABCD is not on the watchlist but is a cashtag; ABCD alone is not", ["ABCD"]),
        ("", []),
    ],
)
def test_extraction(text: str, expected: list[str]) -> None:
    assert extract_tickers(text, WATCHLIST) == expected


def test_watchlist_is_configurable() -> None:
    assert extract_tickers("ZZZ and NVDA", parse_watchlist("zzz, ")) == ["ZZZ"]


def test_tickers_are_stored_returned_and_filtered(api_client: TestClient, put_plan: PutPlan) -> None:
    nvda = put_plan(coach="d", date="2026-11-20", text="NVDA above 950, $AMD lagging")
    put_plan(coach="i", date="2026-11-21", text="$nvda earnings next week")
    put_plan(coach="s", date="2026-11-22", text="QQQ only")
    put_plan(coach="n", date="2026-10-01", text="NVDA a month ago")
    assert nvda["tickers"] == ["NVDA", "AMD"]
    legacy = api_client.get("/api/coach-plans/", params={"coach": "d", "date": "2026-11-20"}).json()
    assert legacy["tickers"] == ["NVDA", "AMD"]

    def texts(**params: str) -> list[str]:
        response = api_client.get("/api/v1/plans", params=params)
        assert response.status_code == 200, response.text
        return [p["plan"] for p in response.json()["items"]]

    assert texts(ticker="NVDA", **{"from": "2026-11-01", "to": "2026-11-30"}) == [
        "$nvda earnings next week",
        "NVDA above 950, $AMD lagging",
    ]
    assert texts(ticker="$nvda") == [
        "$nvda earnings next week",
        "NVDA above 950, $AMD lagging",
        "NVDA a month ago",
    ]
    assert texts(ticker="AMD") == ["NVDA above 950, $AMD lagging"]
    assert texts(ticker="TSLA") == []
    assert api_client.get("/api/v1/plans", params={"ticker": "not a ticker"}).status_code == 422


def test_editing_retags(api_client: TestClient, put_plan: PutPlan, internal_headers: dict[str, str]) -> None:
    plan = put_plan(text="$NVDA only")
    edited = api_client.patch(
        f"/internal/plans/{plan['id']}",
        json={
            "plan_text": "switched to $TSLA",
            "actor": {"user_id": "1001", "display_name": "Dan"},
            "message_id": "2",
        },
        headers=internal_headers,
    ).json()
    assert edited["tickers"] == ["TSLA"]
    assert api_client.get("/api/v1/plans", params={"ticker": "NVDA"}).json()["items"] == []
