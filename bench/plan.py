"""What a bench run measures: the full run or the quick smoke run."""

from __future__ import annotations

from dataclasses import dataclass

from bench import seed


@dataclass(frozen=True)
class Plan:
    quick: bool
    seconds: float
    big_days: int  # days per coach in the large runs (x 4 coaches)
    small_days: int = 25
    bot_posts: int = 300
    cached_calls: int = 100_000
    uncached_calls: int = 2_000

    @property
    def big_plans(self) -> int:
        return self.big_days * len(seed.COACHES)

    @property
    def small_plans(self) -> int:
        return self.small_days * len(seed.COACHES)


FULL = Plan(quick=False, seconds=5, big_days=250_000)
QUICK = Plan(quick=True, seconds=2, big_days=2_500, bot_posts=50, cached_calls=20_000, uncached_calls=300)
