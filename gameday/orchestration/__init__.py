"""The Prefect side of the engine: environment slots, the reaper's automations, deployments.

Unlike the rest of :mod:`gameday`, these modules import Prefect; commands import them lazily.
"""
