"""Baseline servers the API is compared with in the same bench run."""
