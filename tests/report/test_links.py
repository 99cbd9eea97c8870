"""Links in a postmortem: Prometheus graphs over the run, the Prefect run page."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gameday.report.links import flow_run_link, graph_link, without_credentials


def test_graph_link_opens_each_query_over_the_run() -> None:
    """Each query is a graph panel covering exactly the run's time range."""
    link = graph_link("http://prom:9090/", ["up", 'rate(x{a="b"}[4s])'], 1_700_000_000.0,
                      1_700_000_090.4)
    parts = urlsplit(link)
    assert (parts.netloc, parts.path) == ("prom:9090", "/graph")
    query = parse_qs(parts.query)
    assert query["g0.expr"] == ["up"] and query["g1.expr"] == ['rate(x{a="b"}[4s])']
    assert query["g0.range_input"] == ["90s"] and query["g0.tab"] == ["0"]
    assert query["g1.end_input"] == ["2023-11-14 22:14:50"]


def test_credentials_never_reach_a_link() -> None:
    """A user and password in the Prometheus URL are dropped from every link."""
    assert without_credentials("https://bob:s3cret@prom.example:9443/p/") == \
        "https://prom.example:9443/p"
    assert "s3cret" not in graph_link("https://bob:s3cret@prom.example", ["up"], 0, 60)


def test_flow_run_link_points_at_the_ui() -> None:
    """The run's page is the UI address of the API, as Prefect itself links it."""
    assert flow_run_link("http://127.0.0.1:4200/api", "abc") == \
        "http://127.0.0.1:4200/flow-runs/flow-run/abc"
