"""The leaderboard's chart, drawn with matplotlib (Agg backend) straight to PNG bytes.

Why matplotlib: the chart needs readable text (title, axis labels, tick labels, hero names, a
legend), a log axis fitted to the data and a separate panel for heroes without damage data. A
hand-written raster with a 3x5 bitmap font could show none of that legibly; matplotlib ships its
own font (DejaVu Sans), so the picture looks the same on every machine. The figure is built with
the object API (no pyplot global state, safe in a run worker) and saved without a timestamp or
version in the PNG, so the same points give the same bytes with the same matplotlib.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 960, 540  # pixels: DPI x inches below
_DPI = 120
POINT, HIGHLIGHT, CHANCE, NODATA = "#1f77b4", "#e6550d", "#c0392b", "#7f7f7f"


@dataclass(frozen=True)
class Point:
    x: float | None  # damage per round (> 0), or None: drawn in the "no stats" panel
    y: float  # win rate, 0..1
    weight: float  # games played, drawn as dot area
    highlight: bool = False
    label: str = ""  # highlighted dots: ``mark`` on the dot, ``label`` in the legend
    mark: str = ""


def _sizes(points: Sequence[Point], heaviest: float) -> list[float]:
    return [20.0 + 280.0 * max(p.weight, 0.0) / heaviest for p in points]


def scatter_png(
    points: Sequence[Point],
    *,
    chance: float | None = None,
    title: str = "Win rate vs hit strength",
    nodata_label: str = "no damage\ndata",
) -> bytes:
    """Win rate (y, 0-100 %) against damage per round (x, log scale fitted to the data); dot
    area = games; highlighted dots orange and named; ``chance`` a dashed reference line. Heroes
    without damage data (x None) get their own narrow panel on the left instead of a fake x."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, PercentFormatter

    hit = [p for p in points if p.x is not None and p.x > 0]
    nodata = [p for p in points if p.x is None or p.x <= 0]
    heaviest = max((p.weight for p in points), default=1.0) or 1.0
    fig = Figure(figsize=(WIDTH / _DPI, HEIGHT / _DPI), dpi=_DPI)
    grid = fig.add_gridspec(1, 2, width_ratios=[1, 9], wspace=0.04)
    side = fig.add_subplot(grid[0, 0])
    main = fig.add_subplot(grid[0, 1], sharey=side)
    for ax in (side, main):
        ax.set_ylim(-0.04, 1.04)
        ax.grid(True, color="#e5e5e5", linewidth=0.8)
        ax.set_axisbelow(True)
        if chance is not None and 0 <= chance <= 1:
            ax.axhline(chance, color=CHANCE, linestyle="--", linewidth=1.2)
    side.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    side.set_ylabel("win rate")
    side.set_xticks([])
    side.set_xlim(-1, 1)
    side.set_xlabel(nodata_label, fontsize=8, color=NODATA)
    if nodata:
        xs = [((i * 0.618) % 1.0) * 1.2 - 0.6 for i in range(len(nodata))]  # fixed jitter
        side.scatter(xs, [p.y for p in nodata], s=_sizes(nodata, heaviest), color=NODATA, alpha=0.6)
    main.tick_params(labelleft=False)
    main.set_xscale("log")
    main.set_xlabel("damage per round (≈ attack stat, log scale)")
    main.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 1-2-5: labels on a decade
    main.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    if hit:
        lo, hi = min(p.x for p in hit), max(p.x for p in hit)  # type: ignore[type-var]
        pad = max(math.log10(hi / lo) * 0.08, 0.1)
        main.set_xlim(lo / 10**pad, hi * 10**pad)
        ordered = sorted(hit, key=lambda p: (p.highlight, -p.weight))
        main.scatter(
            [p.x for p in ordered],
            [p.y for p in ordered],
            s=_sizes(ordered, heaviest),
            color=[HIGHLIGHT if p.highlight else POINT for p in ordered],
            alpha=0.7,
            edgecolors="white",
            linewidths=0.5,
        )
        for p in ordered:
            if p.highlight and p.mark:
                main.annotate(p.mark, (p.x, p.y), ha="center", va="center", fontsize=7,
                              color="white", fontweight="bold")  # fmt: skip
    else:
        main.text(0.5, 0.5, "no completed game yet", transform=main.transAxes, ha="center",
                  color=NODATA)  # fmt: skip
    handles = [main.scatter([], [], s=80, color=POINT, alpha=0.7, label="hero (area = games)")]
    top = [p for p in points if p.highlight and p.label]
    handles.append(main.scatter([], [], s=80, color=HIGHLIGHT, alpha=0.7, label="top 5:"))
    handles += [main.scatter([], [], s=0, label=f"  {p.label}") for p in top]
    if chance is not None:
        handles.append(
            main.axhline(math.nan, color=CHANCE, linestyle="--", label="chance (1/P per game)")
        )
    main.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.9,
                bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)  # fmt: skip
    fig.suptitle(title, fontsize=12)
    fig.subplots_adjust(left=0.09, right=0.76, top=0.91, bottom=0.14)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=_DPI, metadata={"Software": None})
    return out.getvalue()
