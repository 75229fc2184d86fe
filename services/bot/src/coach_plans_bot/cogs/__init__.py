"""One cog per feature: posting plans, browsing them, admin, help."""
