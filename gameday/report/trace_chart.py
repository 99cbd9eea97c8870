"""The waterfall of one faulted trace: a PNG drawn with matplotlib's Agg canvas.

A bar per span, top to bottom in tree order, each label indented by its depth; bars are
coloured by service, faulted spans outlined, the delay gameday injected hatched in red over
its span. As in :mod:`gameday.report.charts`, no ``pyplot``: no global state, no display.
Events such as a circuit breaker opening are marked with a cross. Bars carry the ``gid``
``span-N``, labels ``label-N``, injected segments ``injected`` and event marks ``mark``, so
tests can find them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gameday.errors import ConfigError
from gameday.report.trace_parts import TraceStory

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SERVICE_COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#7f7f7f",
                   "#bcbd22", "#e377c2")
INJECTED_COLOUR = "#d62728"
MARK_COLOUR = "#000000"
ERROR_EDGE = "#d62728"
#: Characters of a bar's label, at most (span names can be long URLs).
LABEL_CHARS = 48
#: Indent per level of depth, as a share of the labels' axis.
INDENT = 0.035


def _wrapped(text: str, limit: int = 110) -> str:
    """``text`` broken into lines of at most ``limit`` characters, for the title."""
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > limit:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def waterfall_figure(story: TraceStory, title: str = "") -> Figure:
    """The figure of ``story``'s trace (not saved)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch
    except ImportError as exc:
        raise ConfigError("charts need matplotlib: pip install 'matplotlib>=3.8'") from exc

    bars = story.bars
    height = min(2.0 + 0.32 * len(bars), 16.0)
    fig = Figure(figsize=(12, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    # Labels get an axis of their own: left-aligned there, their indent shows the depth.
    names, ax = fig.subplots(1, 2, sharey=True, gridspec_kw={"width_ratios": (1.4, 3)})
    colours: dict[str, str] = {}
    total_ms = max((b.start_ms + b.duration_ms for b in bars), default=1.0)
    for row, bar in enumerate(bars):
        colour = colours.setdefault(bar.service,
                                    SERVICE_COLOURS[len(colours) % len(SERVICE_COLOURS)])
        # A span of a few microseconds still shows as a sliver.
        width = max(bar.duration_ms, 0.002 * total_ms)
        (box,) = ax.barh(row, width, left=bar.start_ms, height=0.6, color=colour, alpha=0.85,
                         edgecolor=ERROR_EDGE if bar.error else (
                             "black" if bar.faulted else colour),
                         linewidth=1.4 if bar.faulted or bar.error else 0.5).patches
        box.set_gid(f"span-{row}")
        if bar.injected_ms and bar.injected_start_ms is not None:
            (segment,) = ax.barh(row, bar.injected_ms, left=bar.injected_start_ms, height=0.6,
                                 color="none", edgecolor=INJECTED_COLOUR, hatch="///",
                                 linewidth=1.2).patches
            segment.set_gid("injected")
        for at, name in bar.marks:
            (mark,) = ax.plot([at], [row], marker="X", markersize=9, color=MARK_COLOUR,
                              linestyle="none")
            mark.set_gid("mark")
            ax.annotate(name, (at, row), xytext=(0, 9), textcoords="offset points",
                        ha="center", fontsize=7, color=MARK_COLOUR)
        injected = f" ({bar.injected_ms:.0f} ms injected)" if bar.injected_ms else ""
        ax.text(bar.start_ms + width, row, f" {bar.duration_ms:.1f} ms{injected}",
                va="center", ha="left", fontsize=7,
                color=INJECTED_COLOUR if injected else "#333333")
        text = bar.label if len(bar.label) <= LABEL_CHARS else bar.label[:LABEL_CHARS - 1] + "…"
        names.text(0.01 + INDENT * bar.depth, row, text, va="center", ha="left", fontsize=8,
                   fontfamily="monospace", clip_on=True, gid=f"label-{row}")
    names.set_xlim(0, 1)
    names.axis("off")
    ax.set_ylim(len(bars) - 0.5, -0.5)  # the root on top
    ax.tick_params(axis="y", left=False, labelleft=False)
    # Room on the right for the last bar's duration.
    ax.set_xlim(0, total_ms * 1.18)
    ax.set_xlabel("ms since the trace began")
    ax.grid(True, axis="x", alpha=0.3)
    handles = [Patch(color=colour, label=service) for service, colour in colours.items()]
    if any(bar.injected_ms for bar in bars):
        handles.append(Patch(facecolor="none", edgecolor=INJECTED_COLOUR, hatch="///",
                             label="delay injected by gameday"))
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5),
               fontsize=8, frameon=False)
    heading = title or f"Trace {story.trace_id}"
    fig.suptitle(_wrapped(f"{heading}: {story.sentence}", 140), fontsize=9, x=0.01,
                 ha="left")
    return fig


def write_trace_chart(story: TraceStory, folder: Path, title: str = "") -> Path:
    """Save ``story``'s waterfall as ``folder/trace.png``; the file written."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / story.file
    waterfall_figure(story, title).savefig(path, format="png")
    return path
