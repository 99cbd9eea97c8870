"""An echo upstream and a TCP-mode proxy in front of it, one pair per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.injector.conftest import Proxy
from tests.injector.tcp_servers import Server, echo_and_proxy


@pytest.fixture(scope="module")
def tcp(request: pytest.FixtureRequest,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Proxy]]:
    """The echo upstream and a TCP proxy in front of it, for the module."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    with echo_and_proxy(tmp_path_factory.mktemp(f"tcp-{name}")) as both:
        yield both


@pytest.fixture
def proxy(tcp: tuple[Server, Proxy]) -> Iterator[Proxy]:
    """The module's proxy with no rules before and after the test; it overrides the HTTP
    proxy of ``tests/injector/conftest.py`` for the TCP tests."""
    tcp[1].put()
    yield tcp[1]
    tcp[1].put()
