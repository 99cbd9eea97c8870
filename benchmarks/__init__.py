"""Benchmarks run by ``make bench-proxy``, ``bench-tcp``, ``bench-guard`` and ``bench-kill``."""
