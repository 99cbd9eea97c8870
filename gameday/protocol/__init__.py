"""The safe-run protocol as plain Python: prepare, escalate, observe, rollback, learn.

The Prefect layer (``flows/``, ``tasks/``) only orchestrates these functions.
"""
