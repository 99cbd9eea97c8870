"""The sidecar proxy: an HTTP/1.1 reverse proxy that injects faults by rule.

Start it with::

    chaosctl proxy --token-file /run/secrets/proxy-token --listen 127.0.0.1:8080 \\
        --upstream http://127.0.0.1:9000 --admin 127.0.0.1:8081 \\
        [--max-ttl 3600s] [--target NAME] [--token-env GAMEDAY_PROXY_TOKEN] [--seed N] \\
        [--head-timeout 10s] [--body-timeout 30s] [--upstream-timeout 60s] \\
        [--max-connections 4096] [--idle-timeout 120s]

* data plane on ``--listen``: forwards to ``--upstream`` (keep-alive both sides, streamed
  bodies, pooled upstream connections); an unreachable upstream is answered 502 with a JSON
  body. Faulted requests and responses carry ``x-chaos-scenario``, ``x-chaos-fault`` and a
  ``baggage`` entry (``chaos.scenario``, ``chaos.fault``, ``chaos.run``);
* admin API on ``--admin`` (JSON; see :mod:`gameday.injector.proxy.admin` for every route and
  ``/openapi.json`` for the schema); the token comes from the environment variable named by
  ``--token-env``; without a token the admin API may only bind to a loopback address;
* a rule's ``target`` defaults to ``--target``; a proxy started with ``--target`` refuses rules
  aimed at another target;
* a rule is removed by a timer at its ``expires_at``, with no traffic needed, logging a JSON
  ``expired`` line (``started`` and ``removed`` are logged too); ``--max-ttl`` caps the TTL;
* a WebSocket handshake the upstream accepts becomes a tunnel (other upgrades are stripped,
  CONNECT is refused);
* a rule that ends lets go at once of what it holds (blackholed connections close, throttles
  lift, delays end);
* deadlines and caps (see :mod:`~gameday.injector.proxy.limits`) answer 408, 504 or 503;
* stdout carries JSON log lines; the first is ``{"event": "listening", ...}`` with the bound
  addresses (port 0 picks a free port).

Modules: ``http1`` and ``chunked`` (parser), ``client`` (built on ``client_state``,
``client_deadline`` and ``client_response``) and ``upstream`` (the two sides of a proxied
exchange), ``dataplane`` (their shared state and the upstream pool), ``limits``, ``throttle``,
``replies``, ``store`` (rules and their expiry timers), ``admin`` and ``openapi``, ``metrics``,
``server`` (wiring).
"""

from gameday.injector.proxy.server import (
    ProxyConfig,
    parse_address,
    parse_tcp_upstream,
    parse_upstream,
    run,
    serve,
)

__all__ = ["ProxyConfig", "parse_address", "parse_tcp_upstream", "parse_upstream", "run",
           "serve"]
