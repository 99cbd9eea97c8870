"""The built-in demo: real services to break, load to see it, Prometheus and Prefect to watch.

``chaosctl demo up | status | down | env`` drives it (:mod:`gameday.demo.stack`); each part runs
as ``python -m gameday.demo PART``, a Starlette app on uvicorn. Modules: ``web`` (what the
services share), ``metrics`` (the metric names ``catalog/signals.yaml`` queries), ``auth`` and
``users`` (the services), ``cache`` and ``database`` (user-service's Redis and PostgreSQL),
``resilience`` (retries and the circuit breaker), ``load`` (the load generator),
``prometheus``, ``parts``, ``state``, ``envfile`` and ``stack`` (the stack itself).

Nothing is imported here, so starting a part loads only what that part needs.
"""
