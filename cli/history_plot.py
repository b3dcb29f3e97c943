"""The chart of ``leaderboard history --plot``: score with its 95% CI band, and rank, over time.

Two panels sharing the time axis: each model's Bradley-Terry score with its bootstrap CI as a
band (top), and its rank with rank 1 at the top (bottom). One colour per model, the legend outside
the plot in the order of the newest ranking, dates on the x axis. A snapshot that did not rank a
model leaves a gap in its lines. matplotlib (a dev/CLI dependency, never in the Lambda image) is
used without pyplot, on the Agg canvas, so nothing depends on a display.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cli.arguments import UsageError
from cli.history import History
from common.errors import ConfigurationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FORMATS = (".png", ".svg")
WIDTH_IN, HEIGHT_IN, DPI = 11.0, 7.0, 110
MAX_SNAPSHOT_TICKS = 8


def check_path(path: str) -> Path:
    """--plot FILE: a .png or .svg file in a folder that exists."""
    target = Path(path)
    if target.suffix.lower() not in FORMATS:
        raise UsageError(f"--plot: {path[:100]!r} must end in .png or .svg")
    if not target.parent.is_dir():
        raise UsageError(f"--plot: no folder {str(target.parent)[:100]!r} to write into")
    return target


def figure(history: History) -> Figure:
    """The chart as a matplotlib Figure (two axes: score above, rank below)."""
    try:
        from matplotlib import dates as mdates
        from matplotlib import ticker
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ConfigurationError(
            "--plot needs matplotlib, a dev dependency: `make install` (or pip install -e '.[dev]')"
        ) from None

    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    score_ax, rank_ax = fig.subplots(2, 1, sharex=True, height_ratios=(3, 2))
    palette = _palette(len(history.series))
    times = [s.created_at for s in history.snapshots]
    count = len(times)
    worst = 1
    for colour, series in zip(palette, history.series, strict=True):
        points = [series.at(s) for s in history.snapshots]
        score = [float(p.bt_score) if p else math.nan for p in points]
        low = [float(p.bootstrap_q025) if p else math.nan for p in points]
        high = [float(p.bootstrap_q975) if p else math.nan for p in points]
        rank = [p.rank if p else math.nan for p in points]
        worst = max([worst, *(p.rank for p in points if p)])
        newest = points[-1].rank if points and points[-1] else None
        label = f"{newest}. {series.model_name}" if newest else f"-  {series.model_name}"
        score_ax.fill_between(times, low, high, color=colour, alpha=0.14, linewidth=0)
        score_ax.plot(times, score, color=colour, linewidth=1.8, marker="o", markersize=3.5,
                      label=label)  # fmt: skip
        rank_ax.plot(times, rank, color=colour, linewidth=1.8, marker="o", markersize=3.5)

    score_ax.set_title(
        f"{history.leaderboard}: score and rank across {count} public snapshot"
        f"{'s' if count != 1 else ''}",
        loc="left",
        fontsize=13,
        fontweight="bold",
    )
    score_ax.set_ylabel("Bradley-Terry score\n(band: 95% bootstrap CI)")
    rank_ax.set_ylabel("rank")
    rank_ax.set_ylim(worst + 0.5, 0.5)  # rank 1 at the top
    rank_ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
    for ax in (score_ax, rank_ax):
        ax.grid(True, alpha=0.3, linewidth=0.6)
        ax.spines[["top", "right"]].set_visible(False)
    xlabel = "snapshot time, UTC (the votes counted up to then)"
    if count <= MAX_SNAPSHOT_TICKS:  # a few snapshots: a tick at each one
        rank_ax.xaxis.set_major_locator(
            ticker.FixedLocator([float(mdates.date2num(t)) for t in times])
        )
        pattern, day = _tick_format(times)
        rank_ax.xaxis.set_major_formatter(mdates.DateFormatter(pattern, tz=UTC))
        xlabel = f"snapshot time, UTC{f', {day}' if day else ''} (the votes counted up to then)"
    else:
        locator = mdates.AutoDateLocator(minticks=3, maxticks=10, tz=UTC)
        rank_ax.xaxis.set_major_locator(locator)
        rank_ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    rank_ax.set_xlabel(xlabel)
    if history.series:
        fig.legend(
            loc="outside right upper",
            title="by newest rank",
            fontsize=9,
            title_fontsize=9,
            frameon=False,
        )
    return fig


def save(history: History, path: Path) -> None:
    """Draw the chart into ``path`` (PNG or SVG, from its suffix)."""
    if not history.snapshots:
        raise UsageError(f"--plot: {history.leaderboard} has no public snapshot to draw")
    fig = figure(history)
    try:
        fig.savefig(path, format=path.suffix.lower().lstrip("."))
    except OSError as exc:
        raise UsageError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None


def _tick_format(times: list[datetime]) -> tuple[str, str | None]:
    """strftime pattern of the snapshot ticks, and the one day they all fall on (else None)."""
    utc = [t.astimezone(UTC) for t in times]
    seconds = len({t.strftime("%Y%m%d%H%M") for t in utc}) < len(utc)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    days = {t.date() for t in utc}
    if len(days) == 1:
        return clock, f"{next(iter(days)):%Y-%m-%d}"
    return f"%Y-%m-%d\n{clock}", None


def _palette(count: int) -> list[tuple[float, ...]]:
    """Distinct colours: tab10 up to ten models, tab20 up to twenty, then cycling."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    size = int(getattr(cmap, "N", 10))
    return [tuple(cmap(i % size)) for i in range(count)]
