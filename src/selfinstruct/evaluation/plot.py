"""The paper's stacked-bar view of ratings (Wang et al. 2023, Figure 6) as a PNG.

One bar per model; each bar stacks the share of responses rated A (bottom, dark green),
B, C and D (top, red), plus grey for unparseable judge replies when there are any; each
segment is labelled with its count. matplotlib is optional: it is imported here only,
and a missing install raises a :class:`UserError` with the command to run.
"""

from __future__ import annotations

from pathlib import Path

from selfinstruct.errors import UserError
from selfinstruct.evaluation.ratings import LEVEL_MEANINGS, LEVELS, UNPARSED, Distribution

MATPLOTLIB_HINT = "pip install 'selfinstruct[analysis]' (or: pip install matplotlib)"
COLOURS = {"A": "#1a9850", "B": "#a6d96a", "C": "#fdae61", "D": "#d73027", UNPARSED: "#bdbdbd"}


def matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot_ratings(dists: list[Distribution], path: str | Path, title: str) -> Path:
    """Write the stacked bars of ``dists`` to ``path`` (PNG)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(f"drawing ratings.png needs matplotlib: {MATPLOTLIB_HINT}") from None
    levels = list(LEVELS) + ([UNPARSED] if any(d.counts[UNPARSED] for d in dists) else [])
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(dists) + 2.0), 5.0))
    names = [d.model for d in dists]
    bottoms = [0.0] * len(dists)
    for level in levels:
        shares = [100.0 * d.share(level) for d in dists]
        label = f"{level}: {LEVEL_MEANINGS[level]}" if level in LEVEL_MEANINGS else "unparsed"
        bars = ax.bar(names, shares, bottom=bottoms, color=COLOURS[level], label=label,
                      edgecolor="white", linewidth=0.5)
        for bar, d, share in zip(bars, dists, shares):
            if share >= 4.0:
                ax.text(bar.get_x() + bar.get_width() / 2, bar.get_y() + share / 2,
                        str(d.counts[level]), ha="center", va="center", fontsize=8)
        bottoms = [b + s for b, s in zip(bottoms, shares)]
    ax.set_ylabel("% of responses")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    for tick in ax.get_xticklabels():
        tick.set_horizontalalignment("right")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28), ncol=2, fontsize=8,
              frameon=False)
    target = Path(path)
    fig.savefig(target, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return target
