"""Coach Plans."""
