"""Ticker tags: cashtags (`$NVDA`, any case) and upper-case watchlist symbols (`NVDA`)."""

from __future__ import annotations

import re

DEFAULT_WATCHLIST = (
    "AAPL,AMD,AMZN,AVGO,BA,COIN,COST,CRM,DIA,GLD,GOOG,GOOGL,INTC,IWM,JPM,META,MSFT,MSTR,MU,NFLX,"
    "NVDA,ORCL,PLTR,QQQ,SLV,SMCI,SMH,SOXL,SPX,SPY,TLT,TQQQ,TSLA,TSM,UBER,USO,UVXY,VIX,XLE,XLF"
)
# `$BRK.B` keeps its class suffix; the negative look-behind skips "US$100"-style amounts.
_CASHTAG = re.compile(r"(?<![A-Za-z0-9$])\$([A-Za-z]{1,5}(?:\.[A-Za-z])?)(?![A-Za-z0-9])")
_WORD = re.compile(r"(?<![A-Za-z0-9$.])([A-Z]{1,5})(?![A-Za-z0-9])")


def parse_watchlist(raw: str) -> frozenset[str]:
    return frozenset(s.strip().upper() for s in raw.split(",") if s.strip())


def find_mentions(text: str, watchlist: frozenset[str]) -> list[tuple[str, int, int]]:
    """Every mention as (ticker, start, end), in text order; a cashtag's span includes its `$`."""
    mentions = [(m.group(1).upper(), m.start(), m.end()) for m in _CASHTAG.finditer(text)]
    mentions += [(m.group(1), m.start(), m.end()) for m in _WORD.finditer(text) if m.group(1) in watchlist]
    return sorted(mentions, key=lambda mention: mention[1])


def extract_tickers(text: str, watchlist: frozenset[str]) -> list[str]:
    """Tickers in order of first mention, each once."""
    return list(dict.fromkeys(ticker for ticker, _, _ in find_mentions(text, watchlist)))
