"""Thin Prefect tasks, one module per phase of the protocol."""
