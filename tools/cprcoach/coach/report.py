"""The coach report: one self-contained HTML page for one recording (figures embedded as PNG, no
server, no network) that tells a trainee what went wrong, when, and by how much.

It shows the classifier's verdict (each class's probability against the threshold), then the
skeleton's measurements that explain it: a timeline with one mark per compression and the rate,
depth, recoil, elbow angle and arm tilt per compression beside their guideline ranges; the
posture and where the hands pressed; and a strip of frames, the skeleton drawn, at the worst
moment of each error found.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from cprcoach.atomic import write_text_atomic
from cprcoach.classes import load_classes
from cprcoach.coach.measure import (
    GUIDELINE_DEPTH_CM,
    GUIDELINE_ELBOW_DEG,
    GUIDELINE_RATE,
    GUIDELINE_RECOIL,
    GUIDELINE_TILT_DEG,
    Compression,
    Measurements,
)
from cprcoach.figures import plt, png_data_uri
from cprcoach.pose.format import PoseTrack
from cprcoach.pose.overlay import skeleton_frames

GUIDE = "#d9f2d9"  # the guideline band's colour in every figure
DPI = 100
# Which compression shows an error at its worst, by the class table's short name: the measurement
# that evidences it, and whether its largest (True) or smallest value is the worst.
WORST = {
    "insufficient_pressing": ("depth", False),
    "excessive_pressing": ("depth", True),
    "slow_frequency": ("interval", True),
    "bending_arms": ("elbow_deg", False),
    "tilting_arms": ("tilt_deg", True),
    "random_position_pressing": ("spot", True),
}


def _image(rgb: np.ndarray) -> str:
    """A frame at its own size, as a data URI."""
    figure = plt.figure(figsize=(rgb.shape[1] / DPI, rgb.shape[0] / DPI))
    figure.figimage(rgb)
    return png_data_uri(figure, DPI, layout=False)


def _per_compression(m: Measurements, key: str, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    pairs = [(c.time_s, getattr(c, key)) for c in m.compressions if getattr(c, key) is not None]
    times, values = zip(*pairs, strict=True) if pairs else ((), ())
    return np.asarray(times), np.asarray(values, dtype=float) * scale


def timeline_figure(m: Measurements) -> str:
    """The recording over time: the hands' path with a mark per compression, then the figures per
    compression against their guidelines."""
    calibrated = m.px_per_cm is not None
    unit, scale = ("cm", m.torso_px / m.px_per_cm) if calibrated else ("% of torso", 100.0)
    figure, axes = plt.subplots(5, 1, figsize=(9, 10), sharex=True)
    path, rate, depth, recoil, arms = axes
    path.plot(m.time_s, m.height * scale, color="#345")
    for c in m.compressions:
        path.axvline(c.time_s, color="#c33", lw=0.8)
    path.set_ylabel(f"hands' height ({unit})")
    path.set_title(f"{m.count} compressions (red marks, at each one's deepest point)", fontsize=10)
    times, values = _per_compression(m, "rate_per_min")
    rate.axhspan(*GUIDELINE_RATE, color=GUIDE, label="guideline 100-120 per minute")
    rate.plot(times, values, "o-", color="#345")
    rate.set_ylabel("rate (per minute)")
    rate.legend(loc="upper right", fontsize=8)
    times, values = _per_compression(m, "depth_cm" if calibrated else "depth", 1.0 if calibrated else 100.0)
    if calibrated:
        depth.axhspan(*GUIDELINE_DEPTH_CM, color=GUIDE, label="guideline 5-6 cm")
        depth.legend(loc="upper right", fontsize=8)
    depth.plot(times, values, "o-", color="#345")
    depth.set_ylabel(f"depth ({unit})")
    times, values = _per_compression(m, "recoil", 100.0)
    recoil.axhspan(100 * GUIDELINE_RECOIL, 100, color=GUIDE, label="guideline: full recoil")
    recoil.plot(times, values, "o-", color="#345")
    recoil.set_ylabel("recoil (% of the stroke)")
    recoil.set_ylim(0, 105)
    recoil.legend(loc="lower right", fontsize=8)
    arms.axhspan(GUIDELINE_ELBOW_DEG, 180, color=GUIDE, label=f"straight arms: elbow >= {GUIDELINE_ELBOW_DEG:g} deg")
    arms.plot(m.time_s, m.elbow_deg, color="#345", label="elbow angle")
    arms.plot(m.time_s, m.tilt_deg, color="#c80", label=f"arm tilt from vertical (<= {GUIDELINE_TILT_DEG:g} deg)")
    arms.axhline(GUIDELINE_TILT_DEG, color="#c80", ls=":", lw=1)
    arms.set_ylabel("degrees")
    arms.set_xlabel("time (s)")
    arms.set_ylim(0, 185)
    arms.legend(loc="center right", fontsize=8)
    return png_data_uri(figure, DPI)


def hands_figure(m: Measurements) -> str:
    """Where the hands pressed at each compression, beside the shoulders' plumb line."""
    spots = np.array([c.hands_x for c in m.compressions]) * 100
    figure, axis = plt.subplots(figsize=(9, 1.8))
    axis.axvspan(-10, 10, color=GUIDE, label="under the shoulders (within 10% of the torso)")
    axis.scatter(spots, np.zeros_like(spots), color="#345", zorder=3)
    for i, spot in enumerate(spots, start=1):
        axis.annotate(str(i), (spot, 0), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7)
    axis.set_yticks([])
    axis.set_xlabel("hands' offset from the shoulders (% of torso, as this camera sees it)")
    reach = max(30.0, float(np.abs(spots).max()) + 5 if len(spots) else 30.0)
    axis.set_xlim(-reach, reach)
    axis.legend(loc="upper right", fontsize=8)
    return png_data_uri(figure, DPI)


def worst_frames(m: Measurements, errors: list[str], table) -> list[tuple[str, Compression]]:
    """For each error found, the compression that shows it at its worst (caption, compression)."""
    if not m.compressions:
        return []
    spots = np.array([c.hands_x for c in m.compressions])
    values = {
        "depth": [c.depth for c in m.compressions],
        "elbow_deg": [c.elbow_deg for c in m.compressions],
        "tilt_deg": [c.tilt_deg for c in m.compressions],
        "spot": list(np.abs(spots - np.median(spots))),
        "interval": [1.0 / c.rate_per_min if c.rate_per_min else 0.0 for c in m.compressions],
    }
    deepest = int(np.argmax(values["depth"]))
    chosen = []
    for code in errors or [None]:
        short = table.single(code).short if code and table.is_known(code) else None
        if short in WORST:
            key, largest = WORST[short]
            index = int(np.argmax(values[key]) if largest else np.argmin(values[key]))
        else:  # errors of the hands' form or the posture show in any compression: the deepest
            index = deepest
        caption = f"{code} {table.name(code)}" if code and table.is_known(code) else code or "a compression"
        chosen.append((caption, m.compressions[index]))
    return chosen


def strip(clip: str | Path, track: PoseTrack, chosen: list[tuple[str, Compression]]) -> list[tuple[str, str]]:
    """The chosen frames of the clip with the skeleton drawn: (caption, data URI)."""
    frames = skeleton_frames(clip, track, {c.frame for _, c in chosen}) if chosen else {}
    return [
        (f"{caption}: compression at {c.time_s:.1f} s", _image(frames[c.frame]))
        for caption, c in chosen
        if c.frame in frames
    ]


def _figure_rows(summary: dict[str, Any]) -> list[tuple[str, str, str, bool | None]]:
    """(figure, measured, guideline, within it) for the summary table."""

    def shown(value: float | None, fmt: str) -> str:
        return format(value, fmt) if value is not None else "not measured"

    def within(value: float | None, low: float, high: float) -> bool | None:
        return None if value is None else low <= value <= high

    rate, depth_cm, recoil = summary["rate_per_min"], summary["depth_cm"], summary["recoil"]
    elbow, tilt = summary["elbow_deg"], summary["tilt_deg"]
    depth = summary["depth"]
    rows = [
        ("compressions", str(summary["compressions"]), "", None),
        ("rate", shown(rate, ".0f") + " per minute", "100-120 per minute", within(rate, *GUIDELINE_RATE)),
        (
            "depth",
            (shown(depth_cm, ".1f") + " cm")
            if depth_cm is not None
            else shown(depth and 100 * depth, ".0f") + "% of torso",
            "5-6 cm",
            within(depth_cm, *GUIDELINE_DEPTH_CM),
        ),
        (
            "recoil",
            shown(recoil and 100 * recoil, ".0f") + "% of the stroke",
            "full (>= 90%)",
            within(recoil, GUIDELINE_RECOIL, 1.0),
        ),
        (
            "elbow angle",
            shown(elbow, ".0f") + " deg",
            f">= {GUIDELINE_ELBOW_DEG:g} deg (straight arms)",
            within(elbow, GUIDELINE_ELBOW_DEG, 180),
        ),
        (
            "arm tilt",
            shown(tilt, ".0f") + " deg from vertical",
            f"<= {GUIDELINE_TILT_DEG:g} deg",
            within(tilt, 0, GUIDELINE_TILT_DEG),
        ),
        ("posture", summary["posture"], "kneeling", summary["posture"] == "kneeling"),
        ("hands", f"{summary['hands']} pressing", "both, interlocked", summary["hands"] == "both"),
    ]
    wander = summary["wander_cm"] if summary["wander_cm"] is not None else summary["wander"]
    unit = " cm" if summary["wander_cm"] is not None else " torso lengths"
    rows.append(("hands' wander", shown(wander, ".2f") + unit + " between compressions", "one spot", None))
    return rows


STYLE = """
body { font-family: sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; text-align: left; }
tr.found td { background: #fbe3e3; font-weight: bold; }
.bar { display: inline-block; height: 10px; background: #345; vertical-align: middle; }
.ok { color: #276b27; } .off { color: #b22; }
figure { margin: 0.8em 0; } figcaption { font-size: 0.9em; color: #555; }
.strip { display: flex; flex-wrap: wrap; gap: 12px; } .strip img { max-width: 460px; }
"""


def render_report(result: dict[str, Any], m: Measurements, track: PoseTrack, clip: str | Path) -> str:
    """The page's HTML."""
    table = load_classes()  # the official classes: their short names pick each error's worst moment
    summary = m.summary()
    title = Path(result["recording"]).stem
    found = [c for c in result["classes"] if c["code"] in result["errors"]]
    verdict = ", ".join(f"{c['name']} ({c['code']})" for c in found) or "no error found: the compressions look correct"
    rows = "".join(
        f"<tr{' class=found' if c['code'] in result['errors'] else ''}><td>{c['code']}</td>"
        f"<td>{html.escape(c['name'])}</td><td>{c['probability']:.3f}</td>"
        f"<td><span class=bar style='width:{200 * c['probability']:.0f}px'></span></td></tr>"
        for c in result["classes"]
    )
    figures = "".join(
        f"<tr><td>{name}</td><td>{html.escape(value)}</td><td>{html.escape(guide)}</td>"
        f"<td class={'ok' if ok else 'off'}>{'within' if ok else 'outside' if ok is not None else ''}</td></tr>"
        for name, value, guide, ok in _figure_rows(summary)
    )
    shots = "".join(
        f"<figure><img src='{uri}' alt='{html.escape(caption)}'><figcaption>{html.escape(caption)}</figcaption></figure>"
        for caption, uri in strip(clip, track, worst_frames(m, result["errors"], table))
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>CPR coach: {html.escape(title)}</title>
<style>{STYLE}</style></head>
<body>
<h1>CPR coach report: {html.escape(title)}</h1>
<p><b>Verdict:</b> {html.escape(verdict)}.<br>
{html.escape(result["method"])} on the {html.escape(result["modality"])}; an error is reported when its probability
reaches {result["threshold"]:g}.</p>
<h2>Errors and their probabilities</h2>
<table><tr><th>code</th><th>class</th><th>probability</th><th></th></tr>{rows}</table>
<h2>The compressions, measured from the skeleton</h2>
<table><tr><th>figure</th><th>measured</th><th>guideline</th><th></th></tr>{figures}</table>
<figure><img src='{timeline_figure(m)}' alt='timeline'><figcaption>Over time: the hands' path with one mark per
compression; per compression the rate, the depth ({"cm, from the calibrated camera" if m.px_per_cm else "share of the torso"}),
the recoil; the elbow angle and the arms' tilt. Green: the guideline range.</figcaption></figure>
<figure><img src='{hands_figure(m)}' alt='hand position'><figcaption>Where the hands pressed, compression by
compression (numbered), as the camera sees it; posture: {summary["posture"]}.</figcaption></figure>
<h2>The worst moments</h2>
<div class=strip>{shots}</div>
<script>
window.addEventListener("load", () => {{
  const images = [...document.images];
  document.body.dataset.imagesShown = images.filter((i) => i.complete && i.naturalWidth > 0).length + "/" + images.length;
}});
</script>
</body></html>
"""


def write_report(out: str | Path, result: dict[str, Any], m: Measurements, track: PoseTrack, clip: str | Path) -> None:
    write_text_atomic(out, render_report(result, m, track, clip))
