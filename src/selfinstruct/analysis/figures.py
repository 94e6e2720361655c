"""The report's figures as PNG files, drawn with matplotlib's Agg backend (no display).

===================  ==========================================================  ==========
file                 what it shows                                               paper
===================  ==========================================================  ==========
``funnel.png``       candidates -> kept -> with instances -> final tasks, and
                     every reason something was dropped, with counts
``sunburst.png``     top 20 root verbs (inner ring), their top 4 direct-object   Figure 3
                     nouns (outer ring); nested pie charts
``rouge_seed.png``   histogram of each instruction's ROUGE-L F with its most     Figure 4
                     similar seed instruction; the run's threshold dashed
``lengths.png``      word counts of instructions, non-empty inputs, outputs      Figure 5
``classification.png``  classification vs other, kept instructions and final tasks
``margins.png``      histogram of the calibrated classifier's Yes-No margins,
                     its threshold dashed (only when the records carry margins)
===================  ==========================================================  ==========

Each function takes plain numbers and a path, and returns the path. What it leaves out:
computing those numbers (:mod:`.funnel`, :mod:`.verbs`, :mod:`.stats`).
"""

from __future__ import annotations

import math
from pathlib import Path

from selfinstruct.analysis.funnel import Funnel
from selfinstruct.analysis.verbs import VerbNode

DPI = 120
GREY = "#9e9e9e"
BLUE = "#3b6ea8"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    _plt().close(fig)
    return path


def _empty(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=11, color=GREY,
            transform=ax.transAxes)
    ax.set_axis_off()


def _integer_axis(axis) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _hbars(ax, labels: list[str], values: list[int], colour, title: str) -> None:
    if not values:
        _empty(ax, f"{title}: none")
        return
    y = list(range(len(values)))[::-1]
    ax.barh(y, values, color=colour)
    _integer_axis(ax.xaxis)
    ax.set_yticks(y, labels, fontsize=9)
    top = max(values) or 1
    for yi, v in zip(y, values):
        ax.text(v + top * 0.01, yi, str(v), va="center", fontsize=9)
    ax.set_xlim(0, top * 1.15)
    ax.set_title(title, fontsize=10, loc="left")
    ax.spines[["top", "right"]].set_visible(False)


# What a drop reason counts, and its bar colour in the funnel figure.
DROP_KINDS = {
    "bootstrap": ("candidate instructions rejected", "#d9822b"),
    "task": ("tasks dropped whole", "#8e44ad"),
    "parser": ("instances dropped by the parser", "#7f8c8d"),
    "instance": ("instances dropped by the filters", "#16a085"),
}


def funnel_figure(funnel: Funnel, path: Path) -> Path:
    from matplotlib.patches import Patch

    plt = _plt()
    groups = {"bootstrap": funnel.rejected_by_reason, "task": funnel.task_drops_by_reason,
              "parser": funnel.parser_drops_by_reason,
              "instance": funnel.instance_drops_by_reason}
    reasons = [(kind, reason, n) for kind, counts in groups.items()
               for reason, n in counts.items()]
    height = 2.4 + 0.3 * max(4, len(reasons))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, height),
                                      gridspec_kw={"width_ratios": [1, 1.2]})
    steps = funnel.steps()
    _hbars(left, [s for s, _ in steps], [n for _, n in steps], BLUE, "instructions at each step")
    _hbars(right, [f"{kind}: {reason}" for kind, reason, _ in reasons],
           [n for *_, n in reasons], [DROP_KINDS[kind][1] for kind, *_ in reasons],
           "dropped, by reason")
    shown = [kind for kind in DROP_KINDS if groups[kind]]
    if shown:
        right.legend(handles=[Patch(color=DROP_KINDS[k][1], label=DROP_KINDS[k][0])
                              for k in shown],
                     loc="upper center", bbox_to_anchor=(0.4, -0.12), ncol=2, frameon=False,
                     fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def _lighten(colour, amount: float):
    r, g, b, _ = colour
    return (r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount, 1.0)


def _ring_labels(ax, wedges, labels: list[str], radius: float, min_degrees: float,
                 fontsize: float) -> None:
    """Write each label radially in the middle of its wedge, upright, if it fits."""
    for wedge, label in zip(wedges, labels):
        span = (wedge.theta2 - wedge.theta1) % 360 or 360
        if span < min_degrees:
            continue
        angle = (wedge.theta1 + span / 2) % 360
        x = radius * math.cos(math.radians(angle))
        y = radius * math.sin(math.radians(angle))
        rotation = angle if angle <= 90 or angle >= 270 else angle - 180
        if span >= 300:  # one wedge fills the ring: write it flat
            rotation, x, y = 0, 0, radius
        ax.text(x, y, label, ha="center", va="center", rotation=rotation,
                rotation_mode="anchor", fontsize=fontsize)


def sunburst_figure(nodes: list[VerbNode], path: Path, title: str) -> Path:
    """Nested pie charts: verbs inside (r 0.25-0.6), their nouns outside (r 0.6-1.0)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(9, 9))
    if not nodes:
        _empty(ax, "no instruction has a root verb with a direct-object noun")
        return _save(fig, path)
    cmap = plt.get_cmap("tab20")
    colours = [cmap(i % 20) for i in range(len(nodes))]
    pie = {"startangle": 90, "counterclock": False}
    inner, _ = ax.pie([n.count for n in nodes], radius=0.6, colors=colours,
                      wedgeprops={"width": 0.35, "edgecolor": "white", "linewidth": 1}, **pie)
    outer_sizes, outer_colours, outer_labels = [], [], []
    for node, colour in zip(nodes, colours):
        for k, (noun, count) in enumerate(node.nouns):
            outer_sizes.append(count)
            outer_colours.append(_lighten(colour, 0.25 + 0.15 * k))
            outer_labels.append(noun)
    outer, _ = ax.pie(outer_sizes, radius=1.0, colors=outer_colours,
                      wedgeprops={"width": 0.4, "edgecolor": "white", "linewidth": 0.8}, **pie)
    _ring_labels(ax, inner, [n.verb for n in nodes], 0.425, 4.0, 10)
    _ring_labels(ax, outer, outer_labels, 0.8, 2.5, 8)
    ax.set_title(title, fontsize=11)
    ax.set(aspect="equal")
    return _save(fig, path)


def rouge_seed_figure(scores: list[float], threshold: float, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    if not scores:
        _empty(ax, "no instructions")
        return _save(fig, path)
    edges = [i / 20 for i in range(21)]
    ax.hist(scores, bins=edges, color=BLUE, edgecolor="white")
    ax.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1.2)
    ax.text(threshold, ax.get_ylim()[1] * 0.95, f" filter threshold {threshold:g}\n"
            " (seeds and kept instructions)", color="#c0392b", fontsize=8, va="top")
    ax.set_xlim(0, 1)
    _integer_axis(ax.yaxis)
    ax.set_xlabel("ROUGE-L F with the most similar seed instruction")
    ax.set_ylabel("# instructions")
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def _length_panel(ax, values: list[int], title: str, colour: str) -> None:
    if not values:
        _empty(ax, f"{title}: none")
        return
    top = max(values)
    width = max(1, math.ceil((top + 1) / 40))
    edges = list(range(0, top + width + 1, width))
    ax.hist(values, bins=edges, color=colour, edgecolor="white")
    ax.set_title(f"{title} (n={len(values)}, median {sorted(values)[len(values) // 2]})",
                 fontsize=10)
    ax.set_xlabel("words")
    _integer_axis(ax.xaxis)
    _integer_axis(ax.yaxis)
    ax.spines[["top", "right"]].set_visible(False)


def lengths_figure(instructions: list[int], inputs: list[int], outputs: list[int],
                   path: Path) -> Path:
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    _length_panel(axes[0], instructions, "instructions", "#2e7d32")
    _length_panel(axes[1], inputs, "non-empty inputs", "#6a1b9a")
    _length_panel(axes[2], outputs, "outputs", "#ef6c00")
    axes[0].set_ylabel("count")
    fig.tight_layout()
    return _save(fig, path)


def classification_figure(rows: list[tuple[str, int, int]], path: Path) -> Path:
    """``rows``: (label, classification, other) per population; stacked horizontal bars."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(rows) + 1.2))
    labels = [r[0] for r in rows][::-1]
    clf = [r[1] for r in rows][::-1]
    other = [r[2] for r in rows][::-1]
    ax.barh(labels, clf, color="#00897b", label="classification")
    ax.barh(labels, other, left=clf, color="#b0bec5", label="other (generation)")
    for y, (c, o) in enumerate(zip(clf, other)):
        if c:
            ax.text(c / 2, y, str(c), ha="center", va="center", fontsize=9, color="white")
        if o:
            ax.text(c + o / 2, y, str(o), ha="center", va="center", fontsize=9)
    _integer_axis(ax.xaxis)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False,
              fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)


def margin_figure(margins: list[float], edges: list[float], threshold: float | None,
                  path: Path) -> Path:
    """Histogram of classification margins over ``edges``; the threshold dashed."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    if not margins:
        _empty(ax, "no classification margins")
        return _save(fig, path)
    ax.hist(margins, bins=edges, color="#00897b", edgecolor="white")
    if threshold is not None:
        ax.axvline(threshold, color="#c0392b", linestyle="--", linewidth=1.2)
        ax.text(threshold, ax.get_ylim()[1] * 0.95,
                f" threshold {threshold:.2f}\n (classification above it)", color="#c0392b",
                fontsize=8, va="top")
    _integer_axis(ax.yaxis)
    ax.set_xlabel('log-probability margin of " Yes" over " No"')
    ax.set_ylabel("# instructions")
    ax.spines[["top", "right"]].set_visible(False)
    return _save(fig, path)
