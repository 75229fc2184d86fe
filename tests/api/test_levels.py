"""The levels extractor: scored on the hand-written corpus, exact on known phrasings, safe on any text."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coach_plans_api.levels import Level, TickerLevels, extract_levels, levels_to_json
from coach_plans_api.tickers import DEFAULT_WATCHLIST, parse_watchlist
from tests.conftest import REPO

WATCHLIST = parse_watchlist(DEFAULT_WATCHLIST)
DATA = REPO / "tests" / "data"
DOC = REPO / "docs" / "levels.md"
FIGURES_START, FIGURES_END = "<!-- levels-figures:start -->", "<!-- levels-figures:end -->"

# An item is (ticker, kind, condition, value, high): a level counts as found only when all five match.
Item = tuple[str, str, str | None, float, float | None]


def parse_level(spec: str) -> tuple[str, str | None, float, float | None]:
    """`"entry above 950"`, `"target 968"`, `"entry at 950-955"` as (kind, condition, value, high)."""
    words = spec.split()
    kind, condition = words[0], (words[1] if len(words) == 3 else None)
    low, _, high = words[-1].partition("-")
    return kind, condition, float(low), float(high) if high else None


@dataclass
class Score:
    cases: int = 0
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    bias_right: int = 0
    bias_total: int = 0

    @property
    def precision(self) -> float:
        return self.true_positives / (self.true_positives + self.false_positives)

    @property
    def recall(self) -> float:
        return self.true_positives / (self.true_positives + self.false_negatives)

    @property
    def bias_accuracy(self) -> float:
        return self.bias_right / self.bias_total


def load_cases(name: str) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load((DATA / name).read_text(encoding="utf-8"))
    return cases


def score(cases: list[dict[str, Any]]) -> tuple[Score, list[str]]:
    """Precision and recall of level items, bias accuracy per ticker; plus a line per mistake."""
    result, mistakes = Score(cases=len(cases)), []
    for case in cases:
        expected = {
            ticker: (spec[0], {(ticker, *parse_level(level)) for level in spec[1:]})
            for ticker, spec in (case["expect"] or {}).items()
        }
        found = {
            t.ticker: (t.bias, {(t.ticker, lv.kind, lv.condition, lv.value, lv.high) for lv in t.levels})
            for t in extract_levels(case["text"], WATCHLIST)
        }
        want: set[Item] = set().union(*(items for _, items in expected.values()))
        got: set[Item] = set().union(*(items for _, items in found.values()))
        result.true_positives += len(want & got)
        result.false_positives += len(got - want)
        result.false_negatives += len(want - got)
        mistakes += [f"{case['text']!r}: extra {item}" for item in sorted(got - want, key=str)]
        mistakes += [f"{case['text']!r}: missed {item}" for item in sorted(want - got, key=str)]
        for ticker in expected.keys() | found.keys():
            want_bias = expected.get(ticker, ("neutral",))[0]
            got_bias = found.get(ticker, ("neutral",))[0]
            result.bias_total += 1
            result.bias_right += want_bias == got_bias
            if want_bias != got_bias:
                mistakes.append(f"{case['text']!r}: {ticker} bias {got_bias}, expected {want_bias}")
    return result, mistakes


def figures_block() -> str:
    rows = []
    for name, label in (("levels_corpus.yaml", "corpus"), ("levels_holdout.yaml", "held-out")):
        s, _ = score(load_cases(name))
        rows.append(
            f"| {label} (`tests/data/{name}`) | {s.cases} | {s.true_positives + s.false_negatives} "
            f"| {s.precision:.3f} | {s.recall:.3f} | {s.bias_accuracy:.3f} ({s.bias_right}/{s.bias_total}) |"
        )
    return "\n".join(
        [
            FIGURES_START,
            "| sentences | cases | expected levels | precision | recall | bias accuracy |",
            "|---|---:|---:|---:|---:|---:|",
            *rows,
            FIGURES_END,
        ]
    )


@pytest.mark.parametrize("name", ["levels_corpus.yaml", "levels_holdout.yaml"])
def test_precision_and_recall_stay_at_or_above_95_percent(name: str) -> None:
    result, mistakes = score(load_cases(name))
    report = "\n".join(mistakes)
    assert result.precision >= 0.95, report
    assert result.recall >= 0.95, report
    assert result.bias_accuracy >= 0.9, report


def test_the_corpus_is_large_and_varied() -> None:
    cases = load_cases("levels_corpus.yaml")
    assert len(cases) >= 100
    assert {c["style"] for c in cases} >= {"technical", "options", "macro", "sentiment", "traps"}
    texts = [c["text"] for c in cases]
    assert len(set(texts)) == len(texts)
    assert any("$" in t for t in texts)
    assert sum(not c["expect"] for c in cases) >= 10  # sentences whose numbers are all non-levels


def test_docs_carry_the_current_figures() -> None:
    """docs/levels.md shows what this test measures; `UPDATE_LEVELS_DOC=1` rewrites the table."""
    block, doc = figures_block(), DOC.read_text(encoding="utf-8")
    start, end = doc.index(FIGURES_START), doc.index(FIGURES_END) + len(FIGURES_END)
    if os.environ.get("UPDATE_LEVELS_DOC") == "1":
        DOC.write_text(doc[:start] + block + doc[end:], encoding="utf-8")
        doc = DOC.read_text(encoding="utf-8")
    assert block in doc, f"docs/levels.md is stale; run with UPDATE_LEVELS_DOC=1:\n{block}"


def levels_of(text: str) -> dict[str, list[str]]:
    def spec(level: Level) -> str:
        value = f"{level.value:g}" + (f"-{level.high:g}" if level.high is not None else "")
        return " ".join(part for part in (level.kind, level.condition, value) if part)

    return {t.ticker: [t.bias, *map(spec, t.levels)] for t in extract_levels(text, WATCHLIST)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("NVDA long 950 stop 938 target 968", {"NVDA": ["long", "entry at 950", "stop 938", "target 968"]}),
        ("SPX 5950-75 supply", {"SPX": ["neutral", "resistance 5950-5975"]}),
        ("NVDA buy 955-950", {"NVDA": ["long", "entry at 950-955"]}),
        ("NVDA targets 968/85", {"NVDA": ["neutral", "target 968", "target 985"]}),
        ("BTC above 100k; COIN above 300", {"COIN": ["neutral", "entry above 300"]}),
        ("$BTC above 100k", {"BTC": ["neutral", "entry above 100000"]}),
        ("COIN above 1.5k", {"COIN": ["neutral", "entry above 1500"]}),
        ("MSTR 420 over/under", {}),
        ("SPY over/under 600", {"SPY": ["neutral", "pivot 600"]}),
        ("NVDA long above 950 on 11/26 at 9:45 ET", {"NVDA": ["long", "entry above 950"]}),
        ("buy 2 NVDA 950c at 12.40", {"NVDA": ["long", "strike call 950"]}),
        ("NVDA RSI above 70, no entry", {}),
        ("AMD above the 200-day at 150", {"AMD": ["neutral", "entry above 150"]}),
        ("no tickers here: long above 950, stop 938", {}),
        ("", {}),
    ],
)
def test_known_phrasings(text: str, expected: dict[str, list[str]]) -> None:
    assert levels_of(text) == expected


def test_spans_point_at_the_phrase_each_level_came_from() -> None:
    text = "NVDA long above 950, targets 968/985, SL 938; AMD 165 breakout; $SPY 600 puts"
    spans = {
        (t.ticker, lv.kind, lv.value): text[lv.start : lv.end]
        for t in extract_levels(text, WATCHLIST)
        for lv in t.levels
    }
    assert spans == {
        ("NVDA", "entry", 950): "long above 950",
        ("NVDA", "target", 968): "targets 968",
        ("NVDA", "target", 985): "985",
        ("NVDA", "stop", 938): "SL 938",
        ("AMD", "entry", 165): "165 breakout",
        ("SPY", "strike", 600): "600 puts",
    }


def test_json_form() -> None:
    found = extract_levels("$TSLA short below 340, targets 332-330", WATCHLIST)
    assert levels_to_json(found) == [
        {
            "ticker": "TSLA",
            "bias": "short",
            "levels": [
                {"kind": "entry", "condition": "below", "value": 340.0, "high": None, "span": [6, 21]},
                {"kind": "target", "condition": None, "value": 330.0, "high": 332.0, "span": [23, 38]},
            ],
        }
    ]


def test_the_watchlist_decides_bare_tickers() -> None:
    assert levels_of("ZZZ above 10") == {}
    assert extract_levels("ZZZ above 10", frozenset({"ZZZ"})) == [
        TickerLevels("ZZZ", "neutral", (Level("entry", 10.0, None, "above", 4, 12),))
    ]


# Plan-like text: keywords, numbers in every shape the tokenizer knows, tickers and punctuation.
_PIECE_TEXT = (
    "NVDA|$amd|$BRK.B|SPY|BTC|above|below|reclaim of|break|targets|t1|SL|stop|invalidation under|long|"
    "short|fade|for|to|toward|it|support|resistance|pivot|RSI|20-day|EMA|950|950-955|968/985|950c|"
    "600 puts|1,005|5950-75|100k|8:30|ET|11/26|2026-11-26|Nov 26|12%|+2|-1R|2 contracts|Q3|(|)|,|;|.|"
    "\n|/|-|\u2192|@|:|$|not|unless|\u2022|\u2013|\u2014|\u2019|0|00000000000000000000|1.|.5|\x00|"
    + "|".join(["1" + "0" * 309, "9" * 400, "9" * 306 + "k", "9" * 308 + ".5"])  # beyond a float
)
_PIECES = st.sampled_from(_PIECE_TEXT.split("|"))
plan_like = st.lists(_PIECES, max_size=60).map(" ".join)
any_text = st.one_of(plan_like, st.text(max_size=300))


def check_levels(text: str, found: list[TickerLevels]) -> None:
    assert len({t.ticker for t in found}) == len(found)
    for ticker in found:
        assert ticker.bias in ("long", "short", "neutral")
        for level in ticker.levels:
            assert 0 <= level.start < level.end <= len(text)
            assert any(ch.isdigit() for ch in text[level.start : level.end])
            assert 0 < level.value < math.inf
            assert level.high is None or level.value <= level.high < math.inf


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_never_raises_spans_point_into_the_text_and_it_is_deterministic(text: str) -> None:
    found = extract_levels(text, WATCHLIST)
    check_levels(text, found)
    assert extract_levels(text, WATCHLIST) == found


# A smaller number listed after a larger one is read as the shorthand of its end only when it is
# plain digits ("968/85" is 985). Any other form is a number of its own; these once raised.
@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("NVDA targets 968/85", [968.0, 985.0]),
        ("NVDA targets 100k, 1,005", [100_000.0, 1_005.0]),
        ("NVDA targets 1500000 / $11,005", [1_500_000.0, 11_005.0]),
        ("NVDA targets 1500000, 11k", [1_500_000.0, 11_000.0]),
        ("NVDA targets 1500000, 11.5", [1_500_000.0, 11.5]),
    ],
)
def test_a_smaller_number_after_a_larger_one_is_shorthand_only_as_plain_digits(
    text: str, values: list[float]
) -> None:
    found = extract_levels(text, WATCHLIST)
    check_levels(text, found)
    assert [level.value for ticker in found for level in ticker.levels] == values


# Each repeated to exactly 10,000 characters.
_ADVERSARIAL_PIECES = (
    "1|1-|1,|1/|$|a/|a-|950c/|above |NVDA |(|, 1|12/|1:1|1 - |1.|x|$nvda|t1 |1k-|-1-1|"
    "NVDA above 950 targets 968/985 stop 938, "
)
ADVERSARIAL = [(piece * (10_000 // len(piece) + 1))[:10_000] for piece in _ADVERSARIAL_PIECES.split("|")]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:12]))
def test_ten_thousand_character_adversarial_inputs_finish(text: str) -> None:
    """No catastrophic backtracking or quadratic scan: each finishes well inside the timeout."""
    assert len(text) == 10_000
    check_levels(text, extract_levels(text, WATCHLIST))


@pytest.mark.timeout(30)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES, min_size=1500, max_size=2500).map(" ".join))
def test_long_random_plans_finish(text: str) -> None:
    check_levels(text, extract_levels(text, WATCHLIST))
