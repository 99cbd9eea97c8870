"""``chaosctl report``: rebuild a run's postmortem from its journal and Prometheus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gameday.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add ``report``."""
    parser = subparsers.add_parser(
        "report", help="rebuild a run's postmortem (journal + Prometheus)",
        description="Rebuild the postmortem and charts of a run from its journal and what the "
        "environment's Prometheus saw over the run. Without Prometheus (or with "
        "--journal-only) the report is built from the journal alone and says what is "
        "missing. The catalog's history is not touched.")
    parser.add_argument("run", metavar="RUN",
                        help="run id, a unique prefix of one, or 'last' (the newest journal)")
    parser.add_argument("--env", default=None, metavar="NAME|FILE",
                        help="environment whose Prometheus to ask (default: the run's)")
    parser.add_argument("--journal-only", action="store_true",
                        help="do not ask Prometheus; build from the journal alone")
    parser.add_argument("--observed", type=Path, default=None, metavar="FILE",
                        help="use what Prometheus saw as saved by --save-observed")
    parser.add_argument("--save-observed", type=Path, default=None, metavar="FILE",
                        help="also save what Prometheus saw (JSON), to rebuild after its "
                        "retention")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write here (default: $GAMEDAY_REPORTS/RUN or reports/out/RUN)")
    parser.add_argument("--print", action="store_true", dest="show",
                        help="also print the markdown")
    parser.set_defaults(handler=_report)


def find_run(text: str) -> str:
    """The run id ``text`` names: itself, a unique prefix, or ``last``."""
    from gameday.paths import state_dir

    runs = [p.parent for p in (state_dir() / "runs").glob("*/journal.jsonl")]
    if text == "last":
        if not runs:
            raise ConfigError(f"no journal in {state_dir() / 'runs'}")
        return max(runs, key=lambda p: (p / "journal.jsonl").stat().st_mtime).name
    names = sorted(p.name for p in runs)
    if text in names:
        return text
    matches = [n for n in names if n.startswith(text)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ConfigError(f"no run {text!r} in {state_dir() / 'runs'} "
                          f"({len(names)} run(s) there; try 'last')")
    raise ConfigError(f"{text!r} names {len(matches)} runs: {', '.join(matches[:5])}")


def _report(args: argparse.Namespace) -> int:
    from gameday.protocol.learn import blocking, learn
    from gameday.report import observed_from_json, observed_to_json
    from gameday.report.render import scrub

    run = find_run(args.run)
    observed = None
    if args.observed is not None:
        try:
            observed = observed_from_json(args.observed.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--observed {args.observed}: {exc}") from exc
    from gameday.commands import find_environment

    # A named environment may be a block: find it as every command does, not from files only.
    environment = find_environment(args.env) if args.env else None
    learned = blocking(learn(run, environment=environment, prometheus=not args.journal_only,
                             observed=observed, out_dir=args.out, history=False))
    if args.save_observed is not None and learned.observed is not None:
        args.save_observed.write_text(scrub(observed_to_json(learned.observed)),
                                      encoding="utf-8")
    if args.show:
        print(learned.path.read_text(encoding="utf-8"))
    report = learned.report
    print(f"{report.headline}\npostmortem: {learned.path}")
    for chart in report.charts:
        print(f"chart: {learned.path.parent / chart.file}")
    waterfall = learned.path.parent / "trace.png"
    if report.trace is not None and report.trace.story is not None and waterfall.exists():
        print(f"trace: {waterfall}")
    for missing in report.missing:
        print(f"missing: {missing}", file=sys.stderr)
    return 0
