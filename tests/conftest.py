"""Shared pytest setup."""

import os

pytest_plugins = ["tests.demo_stack", "tests.alertmanager_server"]

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
