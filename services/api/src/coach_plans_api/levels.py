"""Price levels in a plan's prose: per ticker, the bias and its entries, targets, stops and strikes.

A deterministic reader, no model: the text is cut into tokens (numbers, words, punctuation; dates and
clock times are recognised first so they never become levels), then one pass reads phrases such as
"long above 950", "targets 968/985", "SL 938", "165 breakout" or "NVDA 950c". Numbers that are not
prices ("RSI 61", "20-day EMA", "2 contracts", "12%", "1R", "Q3") are skipped. Each level goes to the
ticker the clause it stands in is about. docs/levels.md describes the vocabulary and its accuracy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from coach_plans_api.tickers import find_mentions

Kind = Literal["entry", "target", "stop", "support", "resistance", "pivot", "strike"]
Condition = Literal["above", "below", "reclaim", "break", "at", "call", "put"]
Bias = Literal["long", "short", "neutral"]


def _words(text: str) -> list[str]:
    return text.split()


@dataclass(frozen=True, slots=True)
class Level:
    """One price level; `high` is the top of a zone ("950-955"); `text[start:end]` is where it came from."""

    kind: Kind
    value: float
    high: float | None
    condition: Condition | None
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class TickerLevels:
    ticker: str
    bias: Bias
    levels: tuple[Level, ...]


def levels_to_json(found: list[TickerLevels]) -> list[dict[str, Any]]:
    """The stored and served form: plain JSON values."""
    return [
        {
            "ticker": t.ticker,
            "bias": t.bias,
            "levels": [
                {
                    "kind": level.kind,
                    "condition": level.condition,
                    "value": level.value,
                    "high": level.high,
                    "span": [level.start, level.end],
                }
                for level in t.levels
            ],
        }
        for t in found
    ]


# Dates and clock times come first in the alternation, so "11/26", "2026-11-26" and "8:30" are never
# read as numbers. Every branch is linear: no nested quantifiers that can overlap.
_TOKEN = re.compile(
    r"""
    (?P<skip>
        (?<![\d.])\d{4}-\d{1,2}-\d{1,2}(?!\d)
      | (?<![\d./$])(?:1[0-2]|0?[1-9])/(?:3[01]|[12]\d|0?[1-9])(?:/(?:\d{4}|\d{2}))?(?![\d/])
      | (?<![\d.])\d{1,2}:\d{2}(?::\d{2})?(?:\s?[AaPp]\.?[Mm]\b\.?)?
    )
  | (?P<num>
        (?<![A-Za-z0-9.])(?P<sign>[+±-])?\$?(?P<a>\d{1,2}(?:,\d{3})+|\d+)(?P<af>\.\d+)?
        (?:[ ]?[-\u2013][ ]?\$?(?P<b>\d{1,2}(?:,\d{3})+|\d+)(?P<bf>\.\d+)?)?
        (?P<suffix>[A-Za-z%]+|-[A-Za-z]+)?
    )
  | (?P<word>\$?[A-Za-z][A-Za-z0-9'\u2019]*(?:[-/][A-Za-z][A-Za-z0-9'\u2019]*)*)
  | (?P<arrow>->|→|=>)
  | (?P<punct>[,;:.!?()\[\]{}/&@<>=~|\n\u2014\u2013*#%\u2022\u00b7-])
    """,
    re.VERBOSE,
)

_CLAUSE_END = frozenset({",", ";", ".", "!", "?", "\n", "|", "\u2014", "\u2013", "\u2022", "\u00b7"})
_SENTENCE_END = frozenset({";", ".", "!", "?", "\n"})
_MAX_GAP = 3  # words allowed between a keyword and its number ("above yesterday's high of 952")

_ROLE_WORDS: dict[str, tuple[Kind, Condition | None]] = {
    **dict.fromkeys(
        _words(
            "target targets tgt tgts tp tp1 tp2 tp3 pt pts pt1 pt2 t1 t2 t3 t4 objective objectives "
            "targeting trim trims trimming cover covering upside downside runner runners opens toward "
            "towards"
        ),
        ("target", None),
    ),
    **dict.fromkeys(
        _words("stop stops sl stop-loss stoploss invalidation invalid invalidated risk cut out bail"),
        ("stop", None),
    ),
    **dict.fromkeys(_words("support supports floor demand hold holds holding"), ("support", None)),
    **dict.fromkeys(_words("resistance ceiling supply overhead"), ("resistance", None)),
    **dict.fromkeys(_words("pivot over/under o/u"), ("pivot", None)),
    **dict.fromkeys(
        _words(
            "buy buys buying bid bids entry entries enter long short shorting add adds fade fades fading "
            "trigger"
        ),
        ("entry", "at"),
    ),
}
# Roles that a later keyword overrides: "hold above 78" is an entry, "toward 930 are buys" too.
_WEAK_ROLE_WORDS = frozenset({"toward", "towards", "hold", "holds", "holding"})
_DIRECTIONS: dict[str, Condition] = {
    **dict.fromkeys(_words("above over through clears clear clearing"), "above"),
    **dict.fromkeys(_words("below under loses lose losing breakdown"), "below"),
    **dict.fromkeys(_words("reclaim reclaims reclaimed reclaiming"), "reclaim"),
    **dict.fromkeys(_words("break breaks breaking breakout"), "break"),
}
_POSTFIX: dict[str, tuple[Kind, Condition | None]] = {
    **dict.fromkeys(_words("target targets tgt pt next magnet upside"), ("target", None)),
    **dict.fromkeys(_words("stop stops sl invalidation"), ("stop", None)),
    **dict.fromkeys(_words("support floor demand"), ("support", None)),
    **dict.fromkeys(_words("resistance ceiling supply overhead"), ("resistance", None)),
    **dict.fromkeys(_words("pivot line level"), ("pivot", None)),
    "breakout": ("entry", "break"),
    "breakdown": ("entry", "below"),
    "reclaim": ("entry", "reclaim"),
    "buy": ("entry", "at"),
    "buys": ("entry", "at"),
}
_POSTFIX_SKIP = frozenset({"is", "as", "the", "a", "are", "my", "=", ":"})
# Words that carry no meaning for a phrase: they neither end it nor count against its gap.
_FREE = frozenset(
    _words(
        "of the a an at @ is are be it its it's on near around ~ to from into if unless until i i'm im "
        "me my will would we just right again level levels area zone there here = : ( ) [ ] * # - "
        "then and & or"
    )
)
_PRONOUNS = frozenset({"it", "that", "this", "there", "them"})
_NEGATIONS = frozenset({"not", "no", "don't", "dont", "never", "avoid", "avoiding", "without"})
_UNNEGATE = frozenset({"unless", "until", "if"})
_LIST_WORDS = frozenset({"and", "or", "then", "&"})
# A number after one of these in the same phrase is an indicator reading or a size, not a price.
_BLOCKERS = frozenset(
    _words(
        "rsi macd adx cci stoch stochastic iv ivr beta delta pe p/e volume vol oi ratio breadth tick vold "
        "size qty x top max profit loss breakeven ema sma dma vwap ma"
    )
)
# A number followed by one of these is a count, a period or a clock time.
_UNITS_AFTER = frozenset(
    _words(
        "contracts contract cons cts shares share lots lot positions names trades day days week weeks wk "
        "wks month months year years yr yrs min mins minute minutes hour hours hr hrs bar bars candle "
        "candles session sessions ema sma ma dma wma et est edt ct am pm percent pct bps bp points pts "
        "handles ticks delta dte iv times x million billion trillion green red lower higher straight % "
        "m/m y/y q/q"
    )
)
_PERIOD_WORDS = frozenset(
    _words(
        "day days week weeks wk month months year years min mins minute minutes hour hours hr bar bars "
        "candle candles session sessions ema sma ma dma wma"
    )
)
_PERIOD_SUFFIXES = frozenset(
    _words(
        "d h m w y dma ema sma ma wk min hr mo yr -day -week -min -minute -hour -month -year -period "
        "-bar -candle -ema -sma"
    )
)
_MONTHS = frozenset(
    _words(
        "jan feb mar apr jun jul aug sep sept oct nov dec january february march april june july august "
        "september october november december"
    )
)
_MOVES = frozenset(
    _words(
        "run runs running push pushes squeeze squeezes fill fills gap-fill move moves rip rips pop pops "
        "drop drops flush flushes extend extends extension it them room path up down long short rally "
        "continuation go goes higher lower runner runners"
    )
)
_LONG_VOTES = frozenset(
    _words(
        "long buy buys buying bullish bull calls call bid bids reclaim reclaims reclaimed reclaiming breakout"
    )
)
_SHORT_VOTES = frozenset(_words("short shorting bearish bear bears puts put fade fades fading breakdown"))
_SELLER_WORDS = frozenset({"sold", "sell", "selling", "sells", "writing", "wrote", "write", "short"})
# All-capital words that are not subjects of a level (indicators, sessions, events, order types).
_KNOWN_TERMS = frozenset(
    _words(
        "RSI EMA SMA MA DMA VWAP AVWAP MACD ATR ADX CCI IV IVR OI DTE SL TP PT PTS ET EST EDT CT AM PM "
        "AH ATH ATL HOD LOD PDH PDL PDC ORB ORH ORL IB IBH IBL POC VPOC VAH VAL GEX OPEX EPS ER IMO TBD "
        "OK EOD EOW LOL PNL PL NFA DD YTD MTD QQ YOY QOQ BE TA"
    )
)


@dataclass(slots=True)
class _Token:
    kind: str  # num, word, punct, arrow, skip
    text: str
    low: str
    start: int
    end: int
    value: float = 0.0
    high: float | None = None
    suffix: str = ""
    signed: bool = False
    ticker: str | None = None
    subject: bool = False  # a ticker, or another market's name ("BTC", "DXY") whose levels are dropped
    clause: int = 0
    sentence: int = 0
    group: int = 0  # innermost parenthesis group, 0 outside any


def _number(raw: str, fraction: str | None) -> float:
    return float(raw.replace(",", "") + (fraction or ""))


def _expand(low: float, *, high_text: str, high: float) -> float:
    """Shorthand upper ends: "5950-75" is 5950-5975, "968/85" is 968/985. Only plain digits are
    shorthand: "11,005", "11k" or "11.5" are numbers of their own."""
    if not (high < low and high_text.isascii() and high_text.isdigit() and math.isfinite(low)):
        return high
    digits = str(int(low))
    if len(high_text) < len(digits):
        return float(digits[: len(digits) - len(high_text)] + high_text)
    return high


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup or "punct"
        if kind in ("sign", "a", "af", "b", "bf", "suffix"):
            kind = "num"
        token = _Token(kind, match.group(), match.group().lower(), match.start(), match.end())
        if kind == "num":
            token.value = _number(match.group("a"), match.group("af"))
            if match.group("b"):
                b_text = match.group("b").replace(",", "")
                token.high = _expand(token.value, high_text=b_text, high=_number(b_text, match.group("bf")))
                if token.high < token.value:  # "955-950" is the zone 950-955
                    token.value, token.high = token.high, token.value
            token.suffix = (match.group("suffix") or "").lower()
            token.signed = match.group("sign") is not None
            if token.suffix == "k":
                token.value *= 1000
                token.high = token.high * 1000 if token.high is not None else None
            if not (math.isfinite(token.value) and math.isfinite(token.high or 0.0)):
                token.kind = "skip"  # beyond a float ("1" and 309 zeros): no price, and no JSON number
        tokens.append(token)
    return tokens


def _mark_structure(tokens: list[_Token], text: str, *, watchlist: frozenset[str]) -> None:
    """Tickers, other subjects, clauses, sentences and parenthesis groups."""
    tickers = {start: ticker for ticker, start, _ in find_mentions(text, watchlist)}
    clause = sentence = 0
    groups: list[int] = []
    next_group = 0
    for i, token in enumerate(tokens):
        if token.kind == "word":
            token.ticker = tickers.get(token.start)
            token.subject = token.ticker is not None or _other_subject(tokens, i)
        token.clause, token.sentence, token.group = clause, sentence, groups[-1] if groups else 0
        if token.kind == "punct":
            if token.text == "(":
                next_group += 1
                groups.append(next_group)
            elif token.text == ")" and groups:
                groups.pop()
            if token.text in _CLAUSE_END:
                clause += 1
            if token.text in _SENTENCE_END:
                sentence += 1


def _other_subject(tokens: list[_Token], i: int) -> bool:
    """An all-capital name off the watch list ("BTC above 100k", "ES 6000"): its levels are not ours."""
    word = tokens[i].text
    if not (2 <= len(word) <= 5 and word.isalpha() and word.isupper()) or word in _KNOWN_TERMS:
        return False
    low = word.lower()
    if low in _ROLE_WORDS or low in _DIRECTIONS or low in _MONTHS:
        return False
    after = tokens[i + 1] if i + 1 < len(tokens) else None
    return after is not None and (after.kind == "num" or after.low in _DIRECTIONS)


@dataclass(slots=True)
class _Found:
    kind: Kind
    condition: Condition | None
    value: float
    high: float | None
    start: int
    end: int
    anchor: int  # token index the ticker is resolved from


@dataclass(slots=True)
class _Phrase:
    role: Kind | None = None
    condition: Condition | None = None
    weak: bool = False  # set by "to"/"toward"/"for"/an arrow: a postfix keyword wins over it
    start: int = 0
    gap: int = 0
    negated: bool = False
    blocked: bool = False
    listing: bool = False  # just emitted: "/", "and", "then" (or "," for lists of targets) continue it
    separated: bool = False
    last_value: float = 0.0


@dataclass
class _Reader:
    tokens: list[_Token]
    found: list[_Found] = field(default_factory=list)
    votes: list[tuple[int, int]] = field(default_factory=list)  # (token index, +1 long / -1 short)
    phrase: _Phrase = field(default_factory=_Phrase)
    sentence: int = -1
    last_kind: Kind | None = None  # of the sentence's last level: "for 970" after an entry is a target

    def read(self) -> None:
        for i in range(len(self.tokens)):
            self._vote(i)
        i = 0
        while i < len(self.tokens):
            token = self.tokens[i]
            if token.sentence != self.sentence:
                self.sentence, self.last_kind, self.phrase = token.sentence, None, _Phrase()
            if self.phrase.listing and not self._continues(token):
                self.phrase = _Phrase(negated=self.phrase.negated)
            if token.kind == "num":
                i = self._number(i)
                continue
            if token.kind == "punct":
                self._punct(token)
            elif token.kind == "arrow":
                self._role(token, "target", weak=True)
            elif token.kind == "word" and not token.subject:
                i = self._word(i)
                continue
            elif token.kind == "skip":
                self._filler()
            i += 1

    # --- phrases -------------------------------------------------------------------------------
    def _continues(self, token: _Token) -> bool:
        if token.kind == "num":
            return True
        separators = {"/", "&", "and", "or", "then"}
        if self.phrase.role in ("target", "support", "resistance"):
            separators.add(",")
        return token.low in separators

    def _punct(self, token: _Token) -> None:
        phrase = self.phrase
        if phrase.listing and token.text in ("/", "&", ","):
            phrase.separated = True
        elif token.text in _CLAUSE_END or (token.text == ":" and phrase.gap > 0):
            self.phrase = _Phrase()
        elif token.text == ">":
            self._direction(token, "above")
        elif token.text == "<":
            self._direction(token, "below")

    def _filler(self) -> None:
        self.phrase.gap += 1
        if self.phrase.gap > _MAX_GAP:
            self.phrase = _Phrase(negated=self.phrase.negated)

    def _role(
        self, token: _Token, kind: Kind, *, condition: Condition | None = None, weak: bool = False
    ) -> None:
        phrase = self.phrase
        if phrase.role is None and phrase.condition is None:
            phrase.start = token.start
        phrase.role, phrase.condition, phrase.weak, phrase.gap = kind, condition, weak, 0

    def _direction(self, token: _Token, condition: Condition) -> None:
        phrase = self.phrase
        if phrase.role not in ("entry", "stop") or phrase.weak:
            self._role(token, "entry", condition=condition)
        else:
            phrase.condition, phrase.gap = condition, 0

    def _word(self, i: int) -> int:
        """Read the word at ``i``; the index of the next token to read."""
        token, low = self.tokens[i], self.tokens[i].low
        following = self.tokens[i + 1].low if i + 1 < len(self.tokens) else ""
        # The first reading that applies wins, in this order.
        if self._phrase_flag(low, following):
            return i + 1
        if self._two_words(token, following):
            return i + 2
        self._one_word(i, following)
        return i + 1

    def _phrase_flag(self, low: str, following: str) -> bool:
        """A word that only marks the phrase (a list separator, a negation, a blocker)."""
        phrase = self.phrase
        if phrase.listing and low in _LIST_WORDS:
            phrase.separated = True
        elif low in _NEGATIONS:
            phrase.negated = True
        elif low in _UNNEGATE:
            phrase.negated = False
        elif low in _BLOCKERS and not (low == "loss" and following == "of"):
            phrase.blocked = True
        else:
            return False
        return True

    def _two_words(self, token: _Token, following: str) -> bool:
        """A two-word phrase ("take profit", "loss of", "stop loss", "in play") read at once."""
        low = token.low
        if low in ("scale", "take", "profit") and following in ("out", "profit", "profits", "target"):
            self._role(token, "target")
        elif low == "loss" and following == "of":
            self._direction(token, "below")
        elif low == "stop" and following == "loss":
            self._role(token, "stop")
        elif not (low in ("in", "for") and following == "play"):
            return False
        return True

    def _one_word(self, i: int, following: str) -> None:
        """Any other word: a role, a direction, or filler between a role and its number."""
        token, low, phrase = self.tokens[i], self.tokens[i].low, self.phrase
        previous = self._previous_word(i)
        if low == "for" or low == "sell":
            if self.last_kind == "entry" and phrase.role in (None, "entry"):
                self._role(token, "target", weak=True)
        elif low == "to":
            if previous in _MOVES and phrase.role not in ("stop", "target"):
                self._role(token, "target", weak=True)
        elif low in _PRONOUNS and previous in _DIRECTIONS:
            self.phrase = _Phrase()  # "above it": the level was named before
        elif low in _DIRECTIONS:
            condition = _DIRECTIONS[low]
            if previous == "back" and condition == "above":
                condition = "reclaim"
            self._direction(token, condition)
        elif token.text in ("R", "S") and following == ":":
            self._role(token, "resistance" if token.text == "R" else "support")
        elif low in _ROLE_WORDS:
            kind, default = _ROLE_WORDS[low]
            if not (low == "out" and previous in ("scale", "take")):
                self._role(token, kind, condition=default, weak=low in _WEAK_ROLE_WORDS)
        elif low not in _FREE:
            self._filler()

    def _previous_word(self, i: int) -> str:
        for j in range(i - 1, max(i - 4, -1), -1):
            token = self.tokens[j]
            if token.kind == "word" and token.ticker is None:
                return token.low
            if token.kind != "word":
                return token.low
        return ""

    # --- numbers -------------------------------------------------------------------------------
    def _number(self, i: int) -> int:
        """Read the number at ``i``; the index of the next token to read."""
        token, phrase = self.tokens[i], self.phrase
        strike = self._strike(i)
        if strike is not None:
            return strike
        if self._not_a_level(i):
            return i + 1
        if phrase.listing and phrase.separated and phrase.role is not None:
            value = token.value
            if token.high is None and value < phrase.last_value:
                value = _expand(phrase.last_value, high_text=token.text.lstrip("$"), high=value)
            self._emit(
                i, phrase.role, condition=phrase.condition, start=token.start, end=token.end, value=value
            )
            return i + 1
        if phrase.listing:
            self.phrase = _Phrase()
        return self._price_group(i)

    def _not_a_level(self, i: int) -> bool:
        """A number that names no level here (ending or keeping the phrase as it does)."""
        if not self._is_price(i):
            if self._is_period(i):
                self._filler()
            else:
                self.phrase = _Phrase()
            return True
        if self.phrase.blocked:
            self.phrase = _Phrase()
            return True
        after = self.tokens[i + 1] if i + 1 < len(self.tokens) else None
        if after is not None and after.ticker is not None and self.phrase.condition == "at":
            self.phrase = _Phrase()  # "buy 2 NVDA 950c": a count of contracts
            return True
        return False

    def _price_group(self, i: int) -> int:
        """A price, or prices joined by "/", with what the phrase or the words after them say."""
        token, phrase = self.tokens[i], self.phrase
        group = [i]
        while (
            group[-1] + 2 < len(self.tokens)
            and self.tokens[group[-1] + 1].text == "/"
            and self.tokens[group[-1] + 2].kind == "num"
        ):
            group.append(group[-1] + 2)
        side = self._group_side(group[-1]) if len(group) > 1 else None
        if side is not None:  # a spread or a straddle leg list: "950/960c", "230/235 call spread"
            condition, end_index = side
            for j in group:
                self._emit(
                    j,
                    "strike",
                    condition=condition,
                    start=self.tokens[j].start,
                    end=self.tokens[end_index].end,
                )
                self._vote_strike(j, condition)
            self.phrase = _Phrase()
            return end_index + 1
        postfix = self._postfix(group[-1] + 1)
        use_postfix = postfix is not None and (
            phrase.role is None
            or phrase.weak
            # "long 950 stop 938" keeps its entry; "long there with 421 stop" names a stop
            or (
                phrase.role == "entry"
                and phrase.condition == "at"
                and (postfix[0] == "entry" or phrase.gap > 0)
            )
        )
        if postfix is not None and use_postfix:
            kind, condition_, end_index = postfix
            end = self.tokens[end_index].end
            for j in group:
                self._emit(j, kind, condition=condition_, start=self.tokens[j].start, end=end)
            self.phrase = _Phrase()
            return end_index + 1
        if phrase.role is None:
            return group[-1] + 1  # nothing names these numbers, and the rest of the list alike
        self._emit(i, phrase.role, condition=phrase.condition, start=phrase.start, end=token.end)
        return i + 1

    def _emit(
        self,
        i: int,
        kind: Kind,
        *,
        condition: Condition | None,
        start: int,
        end: int,
        value: float | None = None,
    ) -> None:
        token, phrase = self.tokens[i], self.phrase
        if kind == "entry":
            condition = condition or "at"
        elif kind == "stop":
            condition = {"above": "above", "reclaim": "above", "below": "below"}.get(condition or "")  # type: ignore[assignment]
        elif kind != "strike":
            condition = None
        value = token.value if value is None else value
        if not phrase.negated and value > 0:
            self.found.append(_Found(kind, condition, value, token.high, start, end, i))
            self.last_kind = kind
        phrase.listing, phrase.separated, phrase.last_value, phrase.gap = True, False, value, 0
        phrase.role, phrase.condition = kind, condition

    def _is_price(self, i: int) -> bool:
        token = self.tokens[i]
        if token.signed or token.suffix not in ("", "k"):
            return False
        after = self._next_low(i)
        if after in _UNITS_AFTER:
            return False
        before = self.tokens[i - 1] if i > 0 else None
        small_integer = token.value <= 31 and token.value.is_integer() and token.high is None
        if small_integer and (
            _is_month(before) or _is_month(self.tokens[i + 1] if i + 1 < len(self.tokens) else None)
        ):
            return False
        return not (before is not None and before.low in _BLOCKERS)

    def _is_period(self, i: int) -> bool:
        return self.tokens[i].suffix in _PERIOD_SUFFIXES or self._next_low(i) in _PERIOD_WORDS

    def _next_low(self, i: int) -> str:
        return self.tokens[i + 1].low if i + 1 < len(self.tokens) else ""

    def _strike(self, i: int) -> int | None:
        """Option strikes: "950c", "$SPY 600 puts", "450 strike", "1000-strike"; returns the next index."""
        token = self.tokens[i]
        if token.signed or token.high is not None:
            return None
        side: Condition | None = None
        end_index = i
        if token.suffix in ("c", "p"):
            side = "call" if token.suffix == "c" else "put"
        elif token.suffix in ("", "-strike"):
            j = i + 1
            named = token.suffix == "-strike"
            if j < len(self.tokens) and self.tokens[j].low in ("strike", "strikes"):
                named, j = True, j + 1
            if j < len(self.tokens) and self.tokens[j].low in ("call", "calls", "put", "puts"):
                side = "call" if self.tokens[j].low.startswith("call") else "put"
                end_index = j
            elif named:
                end_index = j - 1
                side = self._side_before(i)
            else:
                return None
        else:
            return None
        self._emit(i, "strike", condition=side, start=token.start, end=self.tokens[end_index].end)
        if side is not None:
            self._vote_strike(i, side)
        self.phrase = _Phrase()
        return end_index + 1

    def _group_side(self, last: int) -> tuple[Condition, int] | None:
        token = self.tokens[last]
        if token.suffix in ("c", "p"):
            return ("call" if token.suffix == "c" else "put"), last
        following = self._next_low(last)
        if following in ("call", "calls", "put", "puts"):
            return ("call" if following.startswith("call") else "put"), last + 1
        return None

    def _side_before(self, i: int) -> Condition | None:
        for j in range(i - 1, max(i - 4, -1), -1):
            low = self.tokens[j].low
            if low in ("call", "calls"):
                return "call"
            if low in ("put", "puts"):
                return "put"
            if self.tokens[j].clause != self.tokens[i].clause:
                break
        return None

    def _postfix(self, j: int) -> tuple[Kind, Condition | None, int] | None:
        for k in range(j, min(j + 4, len(self.tokens))):
            token = self.tokens[k]
            if token.low in _POSTFIX:
                return (*_POSTFIX[token.low], k)
            if token.low == "in" and self._next_low(k) == "play":
                return ("target", None, k + 1)
            if token.low not in _POSTFIX_SKIP:
                return None
        return None

    # --- bias ----------------------------------------------------------------------------------
    def _vote(self, i: int) -> None:
        token = self.tokens[i]
        if token.kind != "word":
            return
        low, previous = token.low, self.tokens[i - 1].low if i > 0 else ""
        following = self._next_low(i)
        if low in ("longs", "shorts") and previous == "for":
            self.votes.append((i, 1 if low == "longs" else -1))
        elif low in ("call", "calls", "put", "puts") and i > 0 and self.tokens[i - 1].kind == "num":
            return  # the strike itself votes ("sold 215 puts" is bullish)
        elif low in _DIRECTIONS and self._after_stop_word(i):
            return  # "out if it reclaims 602" is where the trade ends, not its direction
        elif low in _LONG_VOTES:
            self.votes.append((i, 1))
        elif low in _SHORT_VOTES and previous != "float" and following not in ("interest", "squeeze"):
            self.votes.append((i, -1))

    def _after_stop_word(self, i: int) -> bool:
        clause = self.tokens[i].clause
        for j in range(i - 1, max(i - 6, -1), -1):
            token = self.tokens[j]
            if token.clause != clause:
                return False
            if _ROLE_WORDS.get(token.low, ("",))[0] == "stop":
                return True
        return False

    def _vote_strike(self, i: int, side: Condition) -> None:
        sign = 1 if side == "call" else -1
        clause = self.tokens[i].clause
        for j in range(i - 1, max(i - 5, -1), -1):
            if self.tokens[j].clause != clause:
                break
            if self.tokens[j].low in _SELLER_WORDS:
                sign = -sign  # sold puts are a bullish trade
                break
        self.votes.append((i, sign))


def _is_month(token: _Token | None) -> bool:
    if token is None or token.kind != "word":
        return False
    return token.low in _MONTHS or token.text == "May"


def _resolver(tokens: list[_Token]) -> list[int | None]:
    """For each token, the index of the subject token its words are about (or None)."""
    n = len(tokens)
    before: list[int | None] = [None] * n  # last visible subject before, in any clause
    last_top: int | None = None
    last_in_group: dict[int, int] = {}
    for i, token in enumerate(tokens):
        candidates = [c for c in (last_top, last_in_group.get(token.group)) if c is not None]
        before[i] = max(candidates) if candidates else None
        if token.subject:
            if token.group == 0:
                last_top = i
            else:
                last_in_group[token.group] = i
    after: list[int | None] = [None] * n  # next subject after
    upcoming: int | None = None
    for i in range(n - 1, -1, -1):
        after[i] = upcoming
        if tokens[i].subject:
            upcoming = i
    resolved: list[int | None] = [None] * n
    for i, token in enumerate(tokens):
        b, a = before[i], after[i]
        if b is not None and tokens[b].clause == token.clause:
            resolved[i] = b
        elif a is not None and tokens[a].clause == token.clause:
            resolved[i] = a
        elif b is not None:
            resolved[i] = b
        elif a is not None and tokens[a].sentence == token.sentence:
            resolved[i] = a
    return resolved


def _geometry(levels: list[Level]) -> Bias:
    """Bias from where targets sit against the entry (or stop) before them: above is long."""
    signs: set[int] = set()
    entries = [lv for lv in levels if lv.kind == "entry"]
    stops = [lv for lv in levels if lv.kind == "stop"]
    for index, level in enumerate(levels):
        if level.kind == "target":
            earlier = [lv for lv in levels[:index] if lv.kind == "entry"]
            reference = earlier[-1] if earlier else (stops[0] if stops else None)
            if reference is not None and level.value != reference.value:
                signs.add(1 if level.value > reference.value else -1)
    if not signs and entries:
        for stop in stops:
            if stop.value != entries[0].value:
                signs.add(1 if entries[0].value > stop.value else -1)
    if len(signs) == 1:
        return "long" if signs.pop() > 0 else "short"
    return "neutral"


def extract_levels(text: str, watchlist: frozenset[str]) -> list[TickerLevels]:
    """Per ticker, in order of first mention: its bias and its levels in text order."""
    tokens = _tokenize(text)
    _mark_structure(tokens, text, watchlist=watchlist)
    reader = _Reader(tokens)
    reader.read()
    resolved = _resolver(tokens)
    order: dict[str, list[Level]] = {}
    for token in tokens:
        if token.ticker is not None:
            order.setdefault(token.ticker, [])
    seen: set[tuple[str, Kind, Condition | None, float, float | None]] = set()
    for found in reader.found:
        subject = resolved[found.anchor]
        ticker = tokens[subject].ticker if subject is not None else None
        key = (ticker or "", found.kind, found.condition, found.value, found.high)
        if ticker is None or key in seen:
            continue
        seen.add(key)
        order[ticker].append(
            Level(found.kind, found.value, found.high, found.condition, found.start, found.end)
        )
    votes: dict[str, set[int]] = {}
    for index, sign in reader.votes:
        subject = resolved[index]
        ticker = tokens[subject].ticker if subject is not None else None
        if ticker is not None:
            votes.setdefault(ticker, set()).add(sign)
    result: list[TickerLevels] = []
    for ticker, levels in order.items():
        signs = votes.get(ticker, set())
        bias: Bias
        if signs == {1}:
            bias = "long"
        elif signs == {-1}:
            bias = "short"
        elif signs:
            bias = "neutral"
        else:
            bias = _geometry(levels)
        if levels or bias != "neutral":
            result.append(TickerLevels(ticker, bias, tuple(levels)))
    return result
