"""The per-class AP bar plot: ImagineNet beside the baselines, one group of bars per error class
(with error bars where the AP is a mean over seeds)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path

from cprcoach.atomic import atomic_path


def plot_class_ap(
    methods: Mapping[str, Mapping[str, float | None]],
    maps: Mapping[str, float | None],
    path: str | Path,
    title: str,
    names: Mapping[str, str] | None = None,
    errors: Mapping[str, Mapping[str, float | None]] | None = None,
) -> None:
    """methods: name -> {class code: AP or None}; classes with no AP in any method are left out.
    `names` (code -> official name) labels the classes under their codes; `errors` (name -> {code:
    standard deviation or None}) draws error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    codes = [c for c in next(iter(methods.values())) if any(aps.get(c) is not None for aps in methods.values())]
    width = 0.8 / len(methods)
    figure, axes = plt.subplots(figsize=(max(6.0, 0.9 * len(codes) + 2), 4.5), layout="constrained")
    for i, (name, aps) in enumerate(methods.items()):
        positions = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(codes))]
        score = maps.get(name)
        label = f"{name} (mAP {score:.3f})" if score is not None else name
        spread = (errors or {}).get(name)
        yerr = [spread.get(c) or 0.0 for c in codes] if spread else None
        axes.bar(positions, [aps.get(c) or 0.0 for c in codes], width, label=label, yerr=yerr, capsize=2)
    names = names or {}
    labels = [f"{c}\n" + "\n".join(textwrap.wrap(names[c], 12)) if c in names else c for c in codes]
    axes.set_xticks(range(len(codes)), labels, fontsize=7)
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("average precision")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=len(methods), frameon=False)
    axes.grid(axis="y", alpha=0.3)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=120)
    plt.close(figure)
