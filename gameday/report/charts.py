"""Charts of a postmortem: PNG files drawn with matplotlib's Agg canvas.

matplotlib is imported on first use (importing gameday stays light), and figures are drawn
on their own canvas, never through ``pyplot``: no global state, safe in any thread, no display.
Each step is a shaded band labelled with its severity; the moment a guard stopped the run is
a red line. Bands carry the ``gid`` ``step-N`` and the marks ``abort``, so tests can count them.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING

from gameday.errors import ConfigError
from gameday.report.model import GameDayReport
from gameday.report.parts import Chart

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

#: Band colours, alternating so neighbouring steps stay apart.
STEP_COLOURS = ("#f2c14e", "#f78154")
LINE_COLOURS = ("#1f77b4", "#9467bd", "#2ca02c")
ABORT_COLOUR = "#d62728"
#: A band narrower than this share of the axis gets only its number as a label.
NARROW = 0.12


def _when(epoch: float) -> float:
    """Epoch seconds as matplotlib's date number (days since its 1970 epoch)."""
    return epoch / 86400.0


def figure(report: GameDayReport, chart: Chart) -> Figure:
    """The figure of one chart (not saved): curves, baselines, step bands, abort marks."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.dates import DateFormatter
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ConfigError("charts need matplotlib: pip install 'matplotlib>=3.8'") from exc

    fig = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for index, line in enumerate(chart.lines):
        series = report.series_named(line.series)
        if series is None:
            continue
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        ax.plot([_when(t) for t, _ in series.points], [v for _, v in series.points],
                label=line.label, color=colour, linewidth=1.6)
        if line.baseline is not None:
            ax.axhline(line.baseline, color=colour, linestyle="--", linewidth=1,
                       label=f"{line.label} baseline ({line.baseline:.3g} {chart.unit})")
    if report.window is not None:
        ax.set_xlim(_when(report.window[0]), _when(report.window[1]))
    _shade_steps(ax, report)
    _mark_stops(ax, report)
    ax.xaxis_date(tz=UTC)
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel("time (UTC)")
    ax.set_ylabel(chart.unit)
    # A flat zero line (no errors at all) still gets a readable axis.
    ax.set_ylim(bottom=0, top=max(ax.get_ylim()[1], 1.0))
    ax.grid(True, alpha=0.3)
    source = "" if chart.source == "prometheus" else " (from the guards' samples)"
    ax.set_title(f"{report.scenario} in {report.environment}: {chart.title}{source}",
                 fontsize=11)
    # Below the axes: inside, it would hide the first step's label or the curves.
    fig.legend(loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    return fig


def _shade_steps(ax: Axes, report: GameDayReport) -> None:
    left, right = ax.get_xlim()  # date numbers: days
    span = max(right - left, 1e-9)
    for step in report.steps:
        end = step.ended if step.ended is not None else step.started + step.dwell
        band = ax.axvspan(_when(step.started), _when(end),
                          color=STEP_COLOURS[step.severity % 2], alpha=0.18, linewidth=0)
        band.set_gid(f"step-{step.severity}")
        narrow = (_when(end) - _when(step.started)) / span < NARROW
        words = step.fault.split(" ", 1)[-1]
        label = f"S{step.severity}" if narrow else f"S{step.severity} · {words}"
        ax.text(_when(step.started), 0.98, f" {label}",
                transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=8,
                clip_on=True)
    ax.set_xlim(left, right)


def _mark_stops(ax: Axes, report: GameDayReport) -> None:
    marks = [(g.at, f"abort: {g.guard}") for g in report.guards_fired]
    marks += [(s.ended, f"abort: {s.stopped_by}") for s in report.steps
              if s.stopped_by and s.stopped_by.startswith("fault vanished")
              and s.ended is not None]
    for at, text in marks:
        line = ax.axvline(_when(at), color=ABORT_COLOUR, linewidth=1.5)
        line.set_gid("abort")
        ax.text(_when(at), 0.5, f" {text}", transform=ax.get_xaxis_transform(),
                rotation=90, va="center", ha="right", color=ABORT_COLOUR, fontsize=8)


def write_charts(report: GameDayReport, folder: Path) -> tuple[Chart, ...]:
    """Save every chart of ``report`` as PNG in ``folder``; the charts written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in report.charts:
        fig = figure(report, chart)
        fig.savefig(folder / chart.file, format="png")
        written.append(chart)
    return tuple(written)
