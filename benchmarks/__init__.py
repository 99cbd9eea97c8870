"""Benchmarks run by ``make bench-proxy`` and ``make bench-guard``."""
