"""Prefect blocks: configuration and secrets that flows load by name."""
