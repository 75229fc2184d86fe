"""`python -m bench`: the API against its baselines (see docs/performance.md)."""
