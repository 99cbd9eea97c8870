"""Charts: valid PNG files with one shaded band per step and the abort marked."""

from __future__ import annotations

from pathlib import Path

from matplotlib.image import imread

from gameday.report.charts import figure, write_charts
from tests.report.conftest import report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def bands(fig: object) -> list[str]:
    """The ``gid`` of every shaded step band in a figure."""
    ax = fig.axes[0]  # type: ignore[attr-defined]
    return sorted(p.get_gid() for p in ax.patches if str(p.get_gid()).startswith("step-"))


def test_chart_has_one_shaded_band_per_step(case: str) -> None:
    """Every chart shades as many steps as the run had, labelled by severity."""
    built = report(case)
    assert built.charts
    for chart in built.charts:
        fig = figure(built, chart)
        assert bands(fig) == [f"step-{s.severity}" for s in built.steps]
        labels = [t.get_text().strip() for t in fig.axes[0].texts]
        assert all(any(label.startswith(f"S{s.severity}") for label in labels)
                   for s in built.steps)


def test_abort_is_marked_only_when_a_run_stopped() -> None:
    """The guard's abort (or a vanished fault) is a red line; a passed run has none."""
    def marks(case: str) -> int:
        built = report(case)
        fig = figure(built, built.charts[0])
        return sum(line.get_gid() == "abort" for line in fig.axes[0].lines)

    assert marks("aborted") == 1
    assert marks("rollback_failed") == 1
    assert marks("passed") == 0


def test_chart_plots_curves_against_their_baselines() -> None:
    """The latency chart draws p95 and p99 with a dashed baseline each."""
    built = report("aborted")
    fig = figure(built, built.charts[0])
    labels = [line.get_label() for line in fig.axes[0].lines]
    assert labels[:4] == ["p95", "p95 baseline (26 ms)", "p99", "p99 baseline (58 ms)"]


def test_files_are_valid_png_next_to_the_postmortem(tmp_path: Path) -> None:
    """write_charts saves decodable PNG files of a readable size."""
    built = report("aborted")
    written = write_charts(built, tmp_path)
    assert [c.file for c in written] == ["latency.png", "errors.png"]
    for chart in written:
        path = tmp_path / chart.file
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = imread(path).shape
        assert (width, height) == (1000, 400)


def test_journal_only_charts_still_shade_every_step() -> None:
    """Charts drawn from guard samples keep the bands and the abort."""
    built = report("aborted", with_prometheus=False)
    fig = figure(built, built.charts[0])
    assert bands(fig) == ["step-1", "step-2", "step-3"]
    assert "guards' samples" in fig.axes[0].get_title()
