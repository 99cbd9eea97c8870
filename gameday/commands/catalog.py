"""``chaosctl catalog``: list, show, validate and describe the scenario catalog."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gameday.errors import CatalogError, Problem
from gameday.load import Catalog, Document, catalog_root, load_catalog, load_default, parse_yaml
from gameday.models import Environment, Mission, Scenario, Search, Target


def register(subparsers: Any) -> None:
    """Add ``catalog`` and its sub-commands."""
    parser = subparsers.add_parser(
        "catalog",
        help="list, show, validate the scenario catalog",
        description="Work with the versioned catalog of scenarios, missions and environments.",
    )
    parser.add_argument("--catalog", type=Path, default=None, metavar="DIR",
                        help="catalog folder (default: $GAMEDAY_CATALOG, ./catalog, "
                        "the checkout's)")
    sub = parser.add_subparsers(dest="catalog_command", metavar="SUBCOMMAND", required=True)

    listing = sub.add_parser("list", help="one line per scenario",
                             description="List scenarios: name, target, fault, steps, suites.")
    listing.add_argument("--suite", help="only scenarios in this suite (e.g. weekly)")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(handler=_list)

    show = sub.add_parser("show", help="one scenario, resolved",
                          description="Show a scenario with its ladder resolved per step and "
                          "its signals and guards expanded to PromQL.")
    show.add_argument("name", help="scenario name")
    show.add_argument("--env", default=None,
                      help="environment whose rate window fills {window} (default: the first the "
                      "scenario names)")
    show.add_argument("--findings", type=int, default=5, metavar="N",
                      help="how many of the latest findings (catalog history) to show "
                      "before the breaking point week by week (default 5, 0 for neither)")
    show.set_defaults(handler=_show)

    check = sub.add_parser("validate", help="check files; exit 2 listing every problem",
                           description="Validate catalog files: exit 0 when all are valid, else "
                           "exit 2 with every problem (file:line, entry, field) on stderr. "
                           "Scenarios that run through Chaos Mesh in one of their environments "
                           "also have each step's object checked against Chaos Mesh's CRD "
                           "schemas, offline.")
    check.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                       help="files or folders (default: the whole catalog)")
    check.set_defaults(handler=_validate)

    schema = sub.add_parser("schema", help="JSON Schema for editors",
                            description="Print the JSON Schema of a catalog file kind.")
    schema.add_argument("kind", nargs="?", default="scenario",
                        choices=["scenario", "mission", "environment"],
                        help="which file kind (default: scenario)")
    schema.set_defaults(handler=_schema)


def _list(args: argparse.Namespace) -> int:
    catalog = load_default(args.catalog)
    rows = [
        {
            "name": s.name,
            "target": f"{s.target.service}→{s.target.dependency}" if s.target.dependency
            else s.target.service,
            "fault": s.fault.kind,
            "steps": " → ".join(s.step_fault(i + 1).summary().removeprefix(s.fault.kind + " ")
                                for i in range(s.max_severity)),
            "max_severity": s.max_severity,
            "suites": ",".join(s.suites) or "-",
        }
        for s in sorted(catalog.scenarios.values(), key=lambda s: s.name)
        if args.suite is None or args.suite in s.suites
    ]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    headers = ["name", "target", "fault", "steps", "max_severity", "suites"]
    widths = {h: max([len(h), *(len(str(r[h])) for r in rows)]) for h in headers}
    print("  ".join(h.upper().ljust(widths[h]) for h in headers).rstrip())
    for row in rows:
        print("  ".join(str(row[h]).ljust(widths[h]) for h in headers).rstrip())
    return 0


def resolved(scenario: Scenario, catalog: Catalog, window: str) -> dict[str, Any]:
    """The scenario as it will run: per-step faults and TTLs, queries expanded."""
    from gameday.models import render_query

    def query(name: str, own: str | None, target: Target) -> str:
        text = own if own is not None else catalog.signals[name].query
        return render_query(" ".join(text.split()), target, window)

    data = scenario.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    data["steps"] = [
        {"severity": i + 1, "fault": scenario.step_fault(i + 1).summary(),
         "dwell": data["steps"][i]["dwell"], "ttl": f"{scenario.ttl(i + 1):g}s"}
        for i in range(scenario.max_severity)
    ]
    for section in ("signals", "guards"):
        for name, spec in getattr(scenario, section).items():
            data[section][name]["query"] = query(name, spec.query, scenario.target)
    if scenario.search is not None:
        data["search"]["field"] = scenario.search_field(scenario.search)
    return data


def _show(args: argparse.Namespace) -> int:
    import yaml

    catalog = load_default(args.catalog)
    scenario = catalog.scenario(args.name)
    env_name = args.env or scenario.environments[0]
    environment: Environment | None = catalog.environments.get(env_name)
    window = environment.prometheus.window if environment else "1m"
    data = resolved(scenario, catalog, window)
    print(f"# {scenario.name} (queries for environment {env_name!r}, window {window})")
    print(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100), end="")
    if scenario.search is not None:
        print(search_line(scenario, scenario.search))
    if args.findings > 0:
        print("\n".join(findings(scenario.name, args.findings, args.catalog)))
        print("\n".join(weekly_trend(scenario.name, args.env, args.catalog)))
    return 0


def search_line(scenario: Scenario, search: Search) -> str:
    """What the scenario's ``search:`` asks for, as a YAML comment."""
    budget = (f"at most {search.max_probes} probes" if search.max_probes is not None
              else "as many probes as the bracket needs (ceil(log2(range / resolution)) + 2)")
    return (f"# breaking-point search: on {scenario.search_field(search)} after a guard "
            f"breach, to {search.resolution}, {budget}")


def findings(scenario: str, latest: int, catalog: Path | None = None) -> list[str]:
    """The latest findings of ``scenario`` from the catalog's history, newest first.

    Printed as YAML comments, so ``show``'s output stays a valid YAML document.
    """
    from gameday.report.history import history_dir, read_findings, shown_path

    folder = history_dir(catalog)
    found = read_findings(scenario, folder)
    where = shown_path(folder / f"{scenario}.jsonl")
    if not found:
        return [f"# findings: none yet ({where}; every game day of the scenario adds one)"]
    lines = [f"# findings: the latest {min(latest, len(found))} of {len(found)} run(s), "
             f"newest first ({where})"]
    lines += [f"#   {f.line}" for f in reversed(found[-latest:])]
    return lines


def weekly_trend(scenario: str, environment: str | None = None, catalog: Path | None = None,
                 weeks: int = 12) -> list[str]:
    """The breaking point week by week in each environment whose runs found one (or in
    ``environment`` only), the latest ``weeks`` weeks; nothing when no run found one."""
    from gameday.report.history import history_dir, read_findings
    from gameday.report.trend import weekly

    found = read_findings(scenario, history_dir(catalog))
    places = dict.fromkeys(f.environment for f in found if f.breaking_point is not None)
    lines = []
    for place in places if environment is None else [e for e in places if e == environment]:
        rows = weekly(found, place)[-weeks:]
        lines += ["#", f"# Breaking point, week by week ({place}, oldest first):"]
        lines += _table(["WEEK", "RUNS", "BREAKING POINT", "HELD", "CHANGE"],
                        [[r.week, str(r.runs), r.bracket_text,
                          "—" if r.highest_held is None else str(r.highest_held), r.change_text]
                         for r in rows])
    return lines


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    return ["#   " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
            for row in [headers, *rows]]


def _validate(args: argparse.Namespace) -> int:
    root = catalog_root(args.catalog)
    paths = args.paths or [root]
    catalog = load_catalog(paths, signals_from=root / "signals.yaml")
    checked, problems = chaos_mesh_problems(catalog, root)
    if problems:
        raise CatalogError(problems)
    counts = ", ".join(f"{len(getattr(catalog, k))} {k}" for k in
                       ("scenarios", "missions", "environments", "signals"))
    print(f"ok: {counts}; {checked}")
    return 0


def chaos_mesh_problems(catalog: Catalog, root: Path) -> tuple[str, list[Problem]]:
    """Every step whose Chaos Mesh object the cluster would refuse, and what was checked.

    A scenario runs only in the environments it names; each of those with a ``chaos_mesh``
    endpoint for its target builds, offline, the object the driver would submit at every step
    and checks it against the vendored CRD schemas. Environments come from the files being
    validated, else from the catalog's ``environments/`` folder (validating one scenario file
    still checks it against the environments it runs in).
    """
    from gameday.drivers.chaos_mesh import ChaosMeshDriver, check_plan
    from gameday.extras import installed
    from gameday.records import FaultSpec, Labels

    environments = _environments(catalog, root)
    pairs = []
    for scenario in sorted(catalog.scenarios.values(), key=lambda s: s.name):
        for name in scenario.environments:
            environment = environments.get(name)
            endpoint = environment.endpoint_for(scenario.target) if environment else None
            if environment and endpoint and endpoint.driver == "chaos_mesh":
                pairs.append((scenario, environment, endpoint))
    if not pairs:
        return "no scenario runs through Chaos Mesh", []
    if not installed("kubernetes"):
        return ("Chaos Mesh objects not checked (install gameday[kubernetes] to check them "
                "against the CRD schemas)"), []
    problems: list[Problem] = []
    docs: dict[str, Document | None] = {}
    for scenario, environment, endpoint in pairs:
        driver = ChaosMeshDriver.from_endpoint(endpoint, environment.allowed_namespaces)
        steps = [(FaultSpec(fault=scenario.step_fault(step), target=scenario.target,
                            labels=Labels(run="catalog-validate", scenario=scenario.name,
                                          environment=environment.name, step=step)),
                  scenario.ttl(step)) for step in range(1, scenario.max_severity + 1)]
        source = catalog.sources[("scenario", scenario.name)]
        for found in check_plan(driver, steps):
            where = f"{found.kind} {found.field}: " if found.kind else ""
            problems.append(Problem(
                source.file, _step_line(docs, source.file, scenario.name, found.step - 1,
                                        source.line),
                f"scenario {scenario.name!r}", f"steps[{found.step - 1}]",
                f"in environment {environment.name!r} ({found.fault}): {where}"
                f"{found.message} (Chaos Mesh would refuse this object)"))
    return (f"Chaos Mesh objects of {len(pairs)} scenario/environment pair(s) match the CRD "
            "schemas"), problems


def _environments(catalog: Catalog, root: Path) -> dict[str, Environment]:
    """The environments being validated, plus the catalog's that the scenarios name."""
    from gameday.load import load_one

    found = dict(catalog.environments)
    wanted = {name for s in catalog.scenarios.values() for name in s.environments} - set(found)
    for name in sorted(wanted):
        path = root / "environments" / f"{name}.yaml"
        if path.is_file():
            try:
                found[name] = load_one(Environment, path)
            except CatalogError:
                continue  # not among the files asked for: validating it reports its problems
    return found


def _step_line(docs: dict[str, Document | None], file: str, scenario: str, index: int,
               fallback: int) -> int:
    """The line of step ``index`` of ``scenario`` in ``file`` (``fallback`` if not found)."""
    if file not in docs:
        try:
            docs[file] = parse_yaml(Path(file).read_text(encoding="utf-8"), file)
        except (OSError, CatalogError):
            docs[file] = None
    doc = docs[file]
    if doc is None:
        return fallback
    entries = doc.data if isinstance(doc.data, list) else [doc.data]
    for position, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("name") == scenario:
            base: tuple[str | int, ...] = (position,) if isinstance(doc.data, list) else ()
            return doc.line_of((*base, "steps", index))
    return fallback


def _schema(args: argparse.Namespace) -> int:
    models: dict[str, type[BaseModel]] = {
        "scenario": Scenario, "mission": Mission, "environment": Environment}
    model = models[args.kind]
    schema = model.model_json_schema(by_alias=True)
    if args.kind == "scenario":
        # A scenario file holds one scenario or a list of them.
        defs = schema.pop("$defs", {})
        defs["Scenario"] = schema
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "gameday scenario file",
            "anyOf": [{"$ref": "#/$defs/Scenario"},
                      {"type": "array", "items": {"$ref": "#/$defs/Scenario"}}],
            "$defs": defs,
        }
    json.dump(schema, sys.stdout, indent=2, ensure_ascii=False)
    print()
    return 0
