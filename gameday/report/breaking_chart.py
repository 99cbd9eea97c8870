"""The breaking-point search as a chart: each probe's magnitude in the order it ran.

A PNG drawn with matplotlib's Agg canvas, as in :mod:`gameday.report.charts`: no ``pyplot``,
no global state, no display. Held probes are green circles, broken ones red crosses, probes
not judged grey; the final bracket is a shaded band and the starting bracket's ends dashed
lines. A probability is shown in percent, as the postmortem writes it. Marks carry the
``gid`` ``held``, ``broken``, ``unjudged``, ``bracket``, ``start-held`` and ``start-broken``,
so tests can find them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gameday.errors import ConfigError
from gameday.report.breaking import BreakingPoint
from gameday.search_events import Axis

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The key of this chart among the images drawn, and its file next to the postmortem.
BREAKING_IMAGE = "breaking-point"
BREAKING_FILE = "breaking-point.png"
HELD_COLOUR = "#2ca02c"
BROKEN_COLOUR = "#d62728"
UNJUDGED_COLOUR = "#7f7f7f"
BRACKET_COLOUR = "#f2c14e"
#: Marker, colour and legend label per outcome; a probe that never ended counts as not judged.
OUTCOMES = (("held", "o", HELD_COLOUR, "held"), ("broken", "x", BROKEN_COLOUR, "broke"),
            ("unjudged", "s", UNJUDGED_COLOUR, "not judged"))


def shown(axis: Axis) -> tuple[float, str]:
    """The factor and unit values are plotted in: a share as percent, else the axis' own."""
    return (100.0, "%") if axis.unit == "share" else (1.0, axis.unit)


def _start_label(bp: BreakingPoint, end: str) -> str:
    if end == "held":
        value = bp.axis.text(bp.start.held)
        if bp.held_severity is None:
            return f"start: no fault ({value})"
        return f"start: step {bp.held_severity} held ({value})"
    return f"start: step {bp.broken_severity} broke ({bp.axis.text(bp.start.broken)})"


def breaking_figure(bp: BreakingPoint, title: str = "") -> Figure:
    """The figure of ``bp``'s probes (not saved)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as exc:
        raise ConfigError("charts need matplotlib: pip install 'matplotlib>=3.8'") from exc

    factor, unit = shown(bp.axis)
    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if bp.bracket is not None:
        low, high = sorted((bp.bracket.held * factor, bp.bracket.broken * factor))
        band = ax.axhspan(low, high, color=BRACKET_COLOUR, alpha=0.3, linewidth=0,
                          label=f"final bracket: {bp.bracket.text(bp.axis)}")
        band.set_gid("bracket")
    for end, value, colour in (("held", bp.start.held, HELD_COLOUR),
                               ("broken", bp.start.broken, BROKEN_COLOUR)):
        line = ax.axhline(value * factor, color=colour, linestyle="--", linewidth=1,
                          label=_start_label(bp, end))
        line.set_gid(f"start-{end}")
    numbers = [p.number for p in bp.probes]
    # The path the bisection took, faint: the markers are what the reader looks at.
    ax.plot(numbers, [p.value * factor for p in bp.probes], color="#bbbbbb", linewidth=1,
            zorder=1)
    for verdict, marker, colour, label in OUTCOMES:
        picked = [p for p in bp.probes if (p.verdict or "unjudged") == verdict]
        if not picked:
            continue
        (marks,) = ax.plot([p.number for p in picked], [p.value * factor for p in picked],
                           marker=marker, markersize=9, markeredgewidth=2, color=colour,
                           linestyle="none", label=label, zorder=3)
        marks.set_gid(verdict)
        for probe in picked:
            ax.annotate(probe.value_text, (probe.number, probe.value * factor),
                        xytext=(7, 0), textcoords="offset points", va="center", fontsize=8)
    ax.set_xlim(0.5, max(numbers, default=1) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("probe, in the order run")
    ax.set_ylabel(f"{bp.field} ({unit})")
    ax.grid(True, alpha=0.3)
    heading = f"{title}: breaking point" if title else "Breaking point"
    ax.set_title(f"{heading}: {bp.text}", fontsize=10, wrap=True)
    # Below the axes, as the other charts: inside, it would hide the probes.
    fig.legend(loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def write_breaking_chart(bp: BreakingPoint, folder: Path, title: str = "") -> Path:
    """Save ``bp``'s chart as ``folder/breaking-point.png``; the file written."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / BREAKING_FILE
    breaking_figure(bp, title).savefig(path, format="png")
    return path
