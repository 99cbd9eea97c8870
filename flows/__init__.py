"""Prefect flows: the game day (the safe-run protocol), the weekly suite, the sweep."""
