"""The Prefect side of gameday beside flows, tasks and blocks: environment slots, the reaper's
automations, provisioning a server (blocks, limits, deployments) and its worker.

Like ``flows/``, ``tasks/`` and ``blocks/`` it imports Prefect, runs from the checkout and is
not installed into site-packages; ``chaosctl`` loads it through :mod:`gameday.extras`.
"""
