"""The vendored Chaos Mesh CRDs: their sums, their loader, and validation against them."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gameday.drivers import crds
from gameday.drivers.chaos_specs import PLURALS, experiment
from gameday.errors import ChaosSpecError, ConfigError, DriverError, MissingExtra
from gameday.faults import CpuFault, LatencyFault
from gameday.models import Target

VENDORED = Path(crds.__file__).resolve().parent / "crds" / "chaos-mesh"
CALL = Target(service="user-service", dependency="auth-service")


def listed_sums() -> dict[str, str]:
    """SHA256SUMS read here, independently of the loader's parser."""
    rows = [line.split() for line in (VENDORED / "SHA256SUMS").read_text().splitlines() if line]
    return {name.lstrip("*"): digest for digest, name in rows}


def network_chaos(**spec: Any) -> dict[str, Any]:
    """A NetworkChaos object as the driver builds it, with ``spec`` changed."""
    _, built = experiment(LatencyFault(ms=120, jitter_ms=10), CALL, "chaos-testing",
                          {"app": "user-service"}, 30)
    return {"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "NetworkChaos",
            "metadata": {"name": "x", "namespace": "chaos-testing"}, "spec": built | spec}


@pytest.fixture
def fresh_caches() -> Iterator[None]:
    """Loader caches emptied before and after, so a test's folder does not leak."""
    crds.sums.cache_clear()
    crds.crd.cache_clear()
    yield
    crds.sums.cache_clear()
    crds.crd.cache_clear()


def test_every_vendored_file_matches_sha256sums() -> None:
    """Each YAML file's sha256 is the one SHA256SUMS lists, and the list is the folder."""
    sums = listed_sums()
    assert set(sums) == {p.name for p in VENDORED.glob("*.yaml")}
    assert set(sums) == {f"{plural}.yaml" for plural in crds.KINDS.values()}
    for name, digest in sums.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name
    assert crds.checksum_mismatches() == []
    assert crds.sums() == sums


def test_the_readme_names_the_source_commit() -> None:
    """The folder says where the files come from, at which commit, and under which licence."""
    readme = (VENDORED / "README.md").read_text()
    for words in ("chaos-mesh/chaos-mesh", "608b61e7c1b16c01a242e8ddc93c768ea77d783a",
                  "config/crd/bases/chaos-mesh.org_<plural>.yaml", "Apache-2.0", "SHA256SUMS"):
        assert words in readme


@pytest.mark.parametrize(("kind", "plural"), list(crds.KINDS.items()))
def test_each_crd_is_the_kind_its_file_is_named_for(kind: str, plural: str) -> None:
    """Each file is a namespaced chaos-mesh.org CRD of its kind that serves v1alpha1."""
    document = crds.crd(plural)
    assert document["kind"] == "CustomResourceDefinition"
    assert document["spec"]["group"] == crds.GROUP
    assert document["spec"]["scope"] == "Namespaced"
    assert (document["spec"]["names"]["kind"], document["spec"]["names"]["plural"]) == (
        kind, plural)
    assert crds.schema(plural)["type"] == "object"


@pytest.mark.parametrize("plural", sorted(PLURALS.values()))
def test_created_kinds_need_nothing_the_validator_skips(plural: str) -> None:
    """The kinds the driver creates have no CEL rules or nullable fields (not evaluated here)."""
    text = (VENDORED / f"{plural}.yaml").read_text()
    assert "x-kubernetes-validations" not in text
    assert "nullable:" not in text


def test_schema_is_a_copy() -> None:
    """Changing a returned schema leaves the loader's document as it was."""
    crds.schema("podchaos")["properties"].clear()
    assert "spec" in crds.schema("podchaos")["properties"]


def test_a_spec_the_driver_builds_passes() -> None:
    """The driver's objects have no schema problems."""
    assert crds.problems(network_chaos()) == []
    _, stress = experiment(CpuFault(workers=2, load_percent=40), Target(service="web"), "ns",
                           {"app": "web"}, 30)
    crds.check({"apiVersion": "chaos-mesh.org/v1alpha1", "kind": "StressChaos",
                "metadata": {"name": "s"}, "spec": stress})


def test_a_bad_mode_and_a_wrong_type_are_named_by_field() -> None:
    """An unknown mode and an integer where a string belongs are reported at their paths."""
    found = crds.problems(network_chaos(mode="everything", value=2,
                                        delay={"latency": "300", "jitter": "1ms"}))
    by_field = {p.field: p.message for p in found}
    assert set(by_field) == {"spec.mode", "spec.value", "spec.delay.latency"}
    assert by_field["spec.mode"].startswith("'everything' is not one of ['one', 'all'")
    assert by_field["spec.value"] == "2 is not of type 'string'"
    assert str(next(p for p in found if p.field == "spec.delay.latency")).startswith(
        "spec.delay.latency: '300' does not match")


def test_list_items_are_named_by_index() -> None:
    """A problem inside a list names the item's index."""
    body = network_chaos(selector={"namespaces": ["chaos-testing", 7],
                                   "labelSelectors": {"app": "x"}})
    assert [p.field for p in crds.problems(body)] == ["spec.selector.namespaces[1]"]


def test_check_raises_a_driver_error_with_every_problem() -> None:
    """``check`` raises ChaosSpecError (a DriverError) naming the object and each field."""
    with pytest.raises(ChaosSpecError) as caught:
        crds.check(network_chaos(mode="everything", action="explode"))
    assert isinstance(caught.value, DriverError)
    assert str(caught.value).startswith("NetworkChaos x: Chaos Mesh would refuse it: ")
    assert [p.split(":")[0] for p in caught.value.problems] == ["spec.action", "spec.mode"]


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"kind": "LatencyChaos"}, "kind", "not a Chaos Mesh kind"),
    ({"apiVersion": "v1"}, "apiVersion", "is not chaos-mesh.org/<version>"),
    ({"apiVersion": "chaos-mesh.org/v2"}, "apiVersion", "serves v1alpha1, not v2"),
])
def test_objects_chaos_mesh_does_not_serve_are_refused(change: dict[str, str], field: str,
                                                       message: str) -> None:
    """An object of no Chaos Mesh kind, group or served version is refused at that field."""
    [problem] = crds.problems(network_chaos() | change)
    assert problem.field == field and message in problem.message


def test_an_unserved_schema_is_a_config_error() -> None:
    """Asking for the schema of a version the CRD does not serve names those it does."""
    with pytest.raises(ConfigError, match="serves: v1alpha1"):
        crds.schema("networkchaos", "v2")


def test_an_edited_crd_is_refused_and_reported(tmp_path: Path, fresh_caches: None,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A vendored file edited without new sums is refused; the check lists every mismatch."""
    shutil.copy(VENDORED / "podchaos.yaml", tmp_path)
    shutil.copy(VENDORED / "httpchaos.yaml", tmp_path / "extra.yaml")
    sums = listed_sums()
    (tmp_path / "SHA256SUMS").write_text(f"{sums['podchaos.yaml']} *podchaos.yaml\n"
                                         f"{sums['stresschaos.yaml']}  stresschaos.yaml\n")
    monkeypatch.setattr(crds, "folder", lambda: tmp_path)
    assert crds.crd("podchaos")["spec"]["names"]["kind"] == "PodChaos"  # binary-mode line
    crds.crd.cache_clear()
    with (tmp_path / "podchaos.yaml").open("a") as file:
        file.write("# edited\n")
    with pytest.raises(ConfigError, match=r"podchaos\.yaml does not match SHA256SUMS"):
        crds.crd("podchaos")
    with pytest.raises(ConfigError, match="no vendored Chaos Mesh CRD for 'networkchaos'"):
        crds.crd("networkchaos")
    found = crds.checksum_mismatches()
    assert [line.split(":")[0] for line in found] == ["extra.yaml", "podchaos.yaml",
                                                      "stresschaos.yaml"]
    assert "missing" in found[2] and "not listed" in found[0]


def test_a_malformed_sums_line_is_a_config_error(tmp_path: Path, fresh_caches: None,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A SHA256SUMS line that is not '<sha256>  <file>' is refused with its line number."""
    (tmp_path / "SHA256SUMS").write_text("abc podchaos.yaml\n")
    monkeypatch.setattr(crds, "folder", lambda: tmp_path)
    with pytest.raises(ConfigError, match="SHA256SUMS line 1"):
        crds.sums()


def test_without_jsonschema_the_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validating without jsonschema installed says which extra brings it."""
    monkeypatch.setitem(sys.modules, "jsonschema", None)
    with pytest.raises(MissingExtra, match=r"gameday\[kubernetes\]"):
        crds.validator(crds.schema("podchaos"))


def test_jsonschema_is_imported_only_when_validating() -> None:
    """Importing the driver and its schema loader leaves jsonschema unimported."""
    code = ("import sys, gameday.drivers.chaos_mesh, gameday.drivers.crds as c; "
            "c.crd('podchaos'); print('jsonschema' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == "False"


# --- the offline checks: catalog validate and a dry run --------------------------------------

ENVIRONMENT = """\
name: cluster
prometheus: {url: "http://127.0.0.1:9"}
allowed_targets: [user-service]
allowed_namespaces: [chaos-testing]
endpoints:
  - service: user-service
    dependency: auth-service
    driver: chaos_mesh
    namespace: chaos-testing
    selector: {app: user-service}
"""
SCENARIO = """\
- name: slow-auth
  description: auth-service slows down
  owner: team-a
  target: {service: user-service, dependency: auth-service}
  environments: [cluster]
  fault: {kind: latency, ms: 50FAULT}
  steps:
    - {ms: 50, dwell: 10s}
    - {ms: 100, dwell: 10s}
  guards:
    errors: {query: "vector(0)", op: ">", threshold: 5}
"""
TWO_METHODS = ", match: {methods: [GET, POST]}"


def catalog(tmp_path: Path, fault: str = "") -> Path:
    """A catalog whose one scenario runs through Chaos Mesh in environment ``cluster``."""
    (tmp_path / "environments").mkdir()
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "environments" / "cluster.yaml").write_text(ENVIRONMENT)
    (tmp_path / "scenarios" / "slow-auth.yaml").write_text(SCENARIO.replace("FAULT", fault))
    return tmp_path


def test_catalog_validate_checks_chaos_mesh_objects(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A scenario running through Chaos Mesh has its objects checked; valid ones pass."""
    from gameday.cli import main

    assert main(["catalog", "--catalog", str(catalog(tmp_path)), "validate"]) == 0
    assert ("Chaos Mesh objects of 1 scenario/environment pair(s) match the CRD schemas"
            in capsys.readouterr().out)


def test_catalog_validate_reports_an_object_chaos_mesh_would_refuse(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Exit 2 naming file, the step's line, scenario, step and field; no traceback."""
    from gameday.cli import main
    from gameday.drivers import chaos_specs

    root = catalog(tmp_path)
    monkeypatch.setattr(chaos_specs, "_all", lambda: {"mode": "everything"})
    assert main(["catalog", "--catalog", str(root), "validate"]) == 2
    err = capsys.readouterr().err
    file = root / "scenarios" / "slow-auth.yaml"
    line = file.read_text().splitlines().index("    - {ms: 100, dwell: 10s}") + 1
    assert (f"{file}:{line}: scenario 'slow-auth': steps[1]: in environment 'cluster' "
            "(latency 100ms): NetworkChaos spec.mode: 'everything' is not one of") in err
    assert "steps[0]" in err and "Traceback" not in err


def test_validating_one_scenario_file_uses_the_catalog_environments(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A fault the driver cannot build is reported though only the scenario file is given."""
    from gameday.cli import main

    root = catalog(tmp_path, TWO_METHODS)
    assert main(["catalog", "--catalog", str(root), "validate",
                 str(root / "scenarios" / "slow-auth.yaml")]) == 2
    assert "in environment 'cluster' (latency 50ms): HTTPChaos matches one HTTP method" in (
        capsys.readouterr().err)


def test_a_real_chaosctl_reports_it_without_traceback(tmp_path: Path) -> None:
    """``chaosctl catalog validate`` in its own process: exit 2, the reason, no traceback."""
    root = catalog(tmp_path, TWO_METHODS)
    proc = subprocess.run([sys.executable, "-m", "gameday", "catalog", "--catalog", str(root),
                           "validate"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "scenario 'slow-auth': steps[0]:" in proc.stderr
    assert "HTTPChaos matches one HTTP method" in proc.stderr
    assert "Traceback" not in proc.stderr


def open_dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The run context of a dry run in ``cluster``, with no cluster credentials at all."""
    from gameday.load import load_catalog
    from gameday.protocol.checks import Request
    from gameday.protocol.prepare import open_run

    monkeypatch.setenv("GAMEDAY_STATE", str(tmp_path / "state"))
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    loaded = load_catalog([catalog(tmp_path / "catalog")])
    request = Request(loaded.scenarios["slow-auth"], loaded.environments["cluster"], "alice")
    return open_run("r42", request, {}, console=False)


def test_a_dry_run_refuses_an_object_chaos_mesh_would_refuse_offline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Prepare refuses naming scenario, step and field before anything asks the cluster."""
    import asyncio

    from gameday.drivers import chaos_specs
    from gameday.errors import RefusedError
    from gameday.protocol.prepare import prepare

    (tmp_path / "catalog").mkdir()
    monkeypatch.setattr(chaos_specs, "_all", lambda: {"mode": "everything"})
    ctx = open_dry_run(tmp_path, monkeypatch)
    try:
        with pytest.raises(RefusedError) as caught:
            asyncio.run(prepare(ctx, dry_run=True))
    finally:
        ctx.close()
    message = str(caught.value)
    assert "Chaos Mesh would refuse objects of scenario 'slow-auth' in 'cluster'" in message
    assert "  - step 2 (latency 100ms): NetworkChaos spec.mode: 'everything'" in message


def test_a_valid_plan_goes_on_to_ask_the_cluster(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """With valid objects prepare passes the check and only then needs the cluster."""
    import asyncio

    from gameday.errors import DriverUnreachable
    from gameday.protocol.prepare import prepare

    (tmp_path / "catalog").mkdir()
    ctx = open_dry_run(tmp_path, monkeypatch)
    try:
        with pytest.raises(DriverUnreachable, match="no Kubernetes credentials"):
            asyncio.run(prepare(ctx, dry_run=True))
    finally:
        ctx.close()
