"""The report's figures: matplotlib without a display, each written as a PNG atomically."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # jobs run without a display, on cluster nodes too

import matplotlib.pyplot as plt  # noqa: E402

from cprcoach.atomic import atomic_path  # noqa: E402

DPI = 110


def save_png(figure: plt.Figure, out: str | Path, dpi: int = DPI) -> None:
    """Lay the figure out, write it to `out` through a temporary sibling, and free it."""
    figure.tight_layout()
    with atomic_path(out) as tmp:
        figure.savefig(tmp, dpi=dpi, format="png")
    plt.close(figure)


def png_data_uri(figure: plt.Figure, dpi: int = DPI, *, layout: bool = True) -> str:
    """A figure as a PNG data URI, for a page that embeds its images; freed once drawn."""
    if layout:
        figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
