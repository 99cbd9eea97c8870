"""The proxy's TCP mode: relays any TCP protocol (PostgreSQL, Redis…), injecting faults by rule.

Start it with::

    chaosctl proxy --mode tcp --listen 127.0.0.1:6380 --upstream 127.0.0.1:6379 \\
        --admin 127.0.0.1:8081 [--max-ttl 3600s] [--target NAME] [--seed N] \\
        [--max-connections 4096]

The admin API, its token, TTLs, labels, metrics and ``/openapi.json`` are the HTTP mode's
(:mod:`gameday.injector.proxy.admin`), taking TCP faults (:mod:`~gameday.injector.tcp.rules`):
``latency`` (+ ``jitter_ms``) and ``bandwidth`` per direction, ``reset`` (at connect, after
``after_ms`` or ``after_bytes``), ``blackhole``, ``timeout``, ``slicer`` and ``limit_data``.
``direction`` is ``upstream`` (client → upstream), ``downstream`` (the default, the
responses) or ``both``; ``probability`` is rolled per connection.

A rule acts on open connections as well as new ones; a rule that ends (expiry, ``DELETE``,
replaced by ``PUT``) lets go at once of what it holds: a blackholed stream delivers what it
held and carries on, a throttle, delay or slicer stops.

Modules: ``rules`` (the rule models), ``plan`` (pure: what the rules do to one connection),
``side`` (one socket), ``stream`` (one direction and its gate, counters and stages),
``stages`` (delay and slicer), ``conn`` (a connection and how it ends), ``plane`` (the open
connections), ``stats`` (connection metrics), ``server`` (wiring, shared with HTTP mode).
"""

from gameday.injector.tcp.rules import TCP_FAULT_KINDS, TCP_RULES, TcpFault, TcpRule, TcpRuleInput
from gameday.injector.tcp.server import run, serve

__all__ = ["TCP_FAULT_KINDS", "TCP_RULES", "TcpFault", "TcpRule", "TcpRuleInput", "run", "serve"]
