"""The built-in demo: real services to break, load to see it, Prometheus and Prefect to watch.

``chaosctl demo up | status | down | env`` drives it (:mod:`gameday.demo.stack`); each part runs
as ``python -m gameday.demo PART``. Modules: ``http`` (a small asyncio HTTP server),
``metrics`` (the metric names ``catalog/signals.yaml`` queries), ``auth``, ``profiles`` and
``users`` (the services), ``resilience`` (retries and the circuit breaker), ``load`` (the load
generator), ``prometheus``, ``parts``, ``state``, ``envfile`` and ``stack`` (the stack itself).

Nothing is imported here, so starting a part loads only what that part needs.
"""
