"""The quantities CPR guidelines speak in, measured from the rescuer's 2D skeleton by plain signal
processing: one compression per deepest point of the hands' path, and per compression its rate,
depth, recoil, arm posture and where the hands pressed.

The hands are the wrists (the one that strokes, when they are apart and the other is idle). Their vertical image
position, in the rescuer's torso lengths (neck to hip) so that every camera distance reads alike,
is low-passed (Butterworth, zero phase) and each compression is a peak of it: its deepest point,
at least MIN_INTERVAL_S after the previous one and prominent by a share of the take's own
stroke. A take's compressions are those whose deepest point lies inside the clip, EDGE_S from its ends. Depth is the
hands' travel from the top before a compression to its bottom; recoil the share of that travel
the hands come back up before the next one. Where the camera is calibrated (the synthetic
cameras are: their sidecars hold K, R, t), depths are also given in cm, from the pixels one
centimetre of vertical travel spans at the chest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import signal

from cprcoach.errors import CprCoachError
from cprcoach.pose.format import PoseTrack, read_pose
from cprcoach.skeleton import JOINT

# CPR guidelines (AHA and ERC 2020-2021): the ranges every figure is drawn against.
GUIDELINE_RATE = (100.0, 120.0)  # compressions per minute
GUIDELINE_DEPTH_CM = (5.0, 6.0)
GUIDELINE_RECOIL = 0.9  # share of the stroke released before the next compression: "full recoil"
GUIDELINE_ELBOW_DEG = 160.0  # arms kept straight: the elbow open at least this far
GUIDELINE_TILT_DEG = 15.0  # arms vertical: shoulder-to-wrist at most this far from plumb

# Compressions run at 1-3.3 Hz (60-200 per minute): below the band lie the rescuer's slow shifts
# (hands moved to another spot, a lean), above it the pose's frame-to-frame noise.
BAND_HZ = (0.7, 5.0)
# The joints that go down and up with every compression: the whole upper body follows the hands,
# and their mean holds a sixth of one joint's noise (at the demo's 512x270, 5 cm of depth is 2-8 px).
UPPER_BODY = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "head", "neck",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip
MIN_INTERVAL_S = 60.0 / 200.0  # no one compresses faster than 200 per minute
# A compression counts when its deepest point lies this far inside the clip: closer to an end, the
# filter sees only half of its stroke (a recording cut mid-compression).
EDGE_S = 0.2
PEAK_FIT_S = 0.16  # a compression's instant: a parabola through its deepest point's neighbours this far
PROMINENCE = 0.3  # of the take's stroke (the 5th to 95th percentile of the upper body's height)
# Hands on each other (interlocked, overlapped) are within this many torso lengths; wrists further
# apart are one pressing hand and one idle (hanging, on the thigh): the one with the larger stroke
# presses.
HANDS_APART = 0.4
IDLE_STROKE = 0.6  # or a wrist that strokes less than half as far as the other: it is not pressing
POSTURES = ("kneeling", "squatting", "standing")
KNEELING_SHIN = 0.45  # kneeling: the knees less than this many torso lengths above the ankles
STANDING_NECK = -0.25  # standing: bent over, the neck this many torso lengths below the hips or lower


@dataclass(frozen=True)
class Compression:
    """One compression, at its deepest point."""

    frame: int
    time_s: float
    rate_per_min: float | None  # from the interval since the previous one (None for the first)
    depth: float  # hands' travel from the top before it to its bottom, in torso lengths
    depth_cm: float | None
    recoil: float | None  # share of the travel released before the next one (None for the last)
    elbow_deg: float  # at the bottom, the pressing arms' mean
    tilt_deg: float  # at the bottom, shoulder-to-wrist from the image's vertical
    hands_x: float  # where the hands pressed: horizontal offset from the shoulders, torso lengths


@dataclass(frozen=True)
class Measurements:
    """One recording's compressions and the series they come from (one value per frame)."""

    fps: float
    torso_px: float
    px_per_cm: float | None
    hands: str  # which wrists press: both, left or right
    posture: str
    compressions: list[Compression]
    time_s: np.ndarray
    height: np.ndarray  # the hands' band-passed height, torso lengths (up is positive)
    elbow_deg: np.ndarray
    tilt_deg: np.ndarray

    @property
    def count(self) -> int:
        return len(self.compressions)

    @property
    def rate_per_min(self) -> float | None:
        """Compressions per minute over the take: the mean interval between the first and the last."""
        if self.count < 2:
            return None
        first, last = self.compressions[0].time_s, self.compressions[-1].time_s
        return 60.0 * (self.count - 1) / (last - first)

    def summary(self) -> dict[str, Any]:
        """The take's figures, each with its guideline."""

        def median(values: list[float | None]) -> float | None:
            present = [v for v in values if v is not None]
            return float(np.median(present)) if present else None

        spots = np.array([c.hands_x for c in self.compressions])
        return {
            "compressions": self.count,
            "rate_per_min": self.rate_per_min,
            "depth": median([c.depth for c in self.compressions]),
            "depth_cm": median([c.depth_cm for c in self.compressions]),
            "recoil": median([c.recoil for c in self.compressions]),
            "elbow_deg": median([c.elbow_deg for c in self.compressions]),
            "tilt_deg": median([c.tilt_deg for c in self.compressions]),
            "hands_x": float(np.median(spots)) if len(spots) else None,
            "wander": float(np.std(spots)) if len(spots) > 1 else None,
            "wander_cm": (
                float(np.std(spots)) * self.torso_px / self.px_per_cm if len(spots) > 1 and self.px_per_cm else None
            ),
            "posture": self.posture,
            "hands": self.hands,
            "guidelines": {
                "rate_per_min": list(GUIDELINE_RATE),
                "depth_cm": list(GUIDELINE_DEPTH_CM),
                "recoil_min": GUIDELINE_RECOIL,
                "elbow_min_deg": GUIDELINE_ELBOW_DEG,
                "tilt_max_deg": GUIDELINE_TILT_DEG,
            },
        }

    def as_dict(self) -> dict[str, Any]:
        """What the assessment JSON holds: the summary and every compression."""
        return {"summary": self.summary(), "per_compression": [asdict(c) for c in self.compressions]}


def px_per_cm(camera: dict[str, Any], chest_point: list[float]) -> float:
    """Image pixels that one centimetre of vertical travel at the chest spans, for a calibrated camera."""
    K, R, t = (np.asarray(camera[key], dtype=float) for key in ("K", "R", "t"))
    points = np.array([chest_point, np.asarray(chest_point) - [0.0, 0.0, 0.01]])
    image = (points @ R.T + t) @ K.T
    pixels = image[:, :2] / image[:, 2:3]
    return float(np.linalg.norm(pixels[1] - pixels[0]))


def _filled(values: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Frames where a joint was not seen, linearly interpolated from those where it was."""
    frames = np.arange(len(values))
    if not seen.any():
        return np.zeros_like(values)
    return np.interp(frames, frames[seen], values[seen])


def _joint(track: PoseTrack, name: str) -> np.ndarray:
    """(T, 2) pixel positions of one joint, gaps filled."""
    points = track.keypoints[:, JOINT[name]]
    seen = track.found & (points[:, 2] > 0)
    return np.stack([_filled(points[:, axis], seen) for axis in (0, 1)], axis=1)


def _filter(values: np.ndarray, fps: float, band: tuple[float, float] | None = None) -> np.ndarray:
    """Zero-phase Butterworth: a low-pass at the band's top, or the band-pass itself."""
    if len(values) < 10:  # too short for the filter's padding: nothing to smooth
        return values
    low, high = band or (None, BAND_HZ[1])
    high = min(high / (fps / 2), 0.99)
    b, a = signal.butter(2, [low / (fps / 2), high] if low else high, btype="bandpass" if low else "lowpass")
    return signal.filtfilt(b, a, values, axis=0, method="gust")


def _peak_time(values: np.ndarray, index: int, half_width: int) -> float:
    """Where between frames a sampled peak lies: the vertex of the parabola fitted (least squares)
    to the samples within half_width of it, which averages the pose's noise over several frames."""
    lo, hi = max(index - half_width, 0), min(index + half_width + 1, len(values))
    if hi - lo < 3:
        return float(index)
    offsets = np.arange(lo, hi) - index
    curvature, slope, _ = np.polyfit(offsets, values[lo:hi], 2)
    if curvature >= 0:  # no maximum there: keep the sample
        return float(index)
    return index + float(np.clip(-slope / (2 * curvature), -half_width, half_width))


def _angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The angle at b between b->a and b->c, degrees."""
    u, v = a - b, c - b
    cosine = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


def inside_clip(instants: np.ndarray, frames: int, fps: float) -> np.ndarray:
    """Which compressions (their deepest points' instants, s) lie at least EDGE_S inside the clip."""
    return (instants >= EDGE_S) & (instants <= (frames - 1) / fps - EDGE_S)


def _posture(track: PoseTrack, torso: float) -> str:
    """Standing (bent over from the hips: the neck below the hips), kneeling (the knees down at the
    ankles' height), or squatting; in torso lengths, as this camera sees them."""
    sides = ("left", "right")
    ankle = np.mean([_joint(track, f"{s}_ankle")[:, 1] for s in sides], axis=0)
    knee = np.mean([_joint(track, f"{s}_knee")[:, 1] for s in sides], axis=0)
    neck_above_hip = float(np.median(_joint(track, "hip")[:, 1] - _joint(track, "neck")[:, 1])) / torso
    if neck_above_hip < STANDING_NECK:
        return POSTURES[2]
    return POSTURES[0] if float(np.median(ankle - knee)) / torso < KNEELING_SHIN else POSTURES[1]


def measure(track: PoseTrack, fps: float, px_per_cm: float | None = None) -> Measurements:
    """Every compression of a pose track, and the series they were found in."""
    if track.frames < 2 or not track.found.any():
        raise CprCoachError(
            "the pose track holds no rescuer to measure" if not track.found.any() else "the pose track is one frame",
            fix="check the recording: the rescuer must be in view while compressing",
        )
    neck, hip = _joint(track, "neck"), _joint(track, "hip")
    torso = float(np.median(np.linalg.norm(neck - hip, axis=1)))
    if torso < 1.0:
        raise CprCoachError("the rescuer's torso spans no pixels", fix="check the pose track")
    wrists = {side: _filter(_joint(track, f"{side}_wrist"), fps) for side in ("left", "right")}
    strokes = {side: np.ptp(np.percentile(w[:, 1], [5, 95])) for side, w in wrists.items()}
    apart = float(np.median(np.linalg.norm(wrists["left"] - wrists["right"], axis=1))) / torso
    weaker, stronger = sorted(strokes.values())
    one_hand = apart > HANDS_APART or weaker < IDLE_STROKE * stronger
    pressing = [max(strokes, key=strokes.get)] if one_hand else ["left", "right"]
    hands = np.mean([wrists[s] for s in pressing], axis=0)
    moving = [name for name in UPPER_BODY if not name.endswith("_wrist") or name.split("_")[0] in pressing]
    body = np.mean([_joint(track, name)[:, 1] for name in moving], axis=0)
    rhythm = -_filter(body - np.median(body), fps, BAND_HZ) / torso  # image y grows downward
    stroke = float(np.ptp(np.percentile(rhythm, [5, 95])))
    bottoms, _ = signal.find_peaks(
        -rhythm, distance=max(1, round(MIN_INTERVAL_S * fps)), prominence=max(PROMINENCE * stroke, 1e-6)
    )
    half_width = max(1, round(PEAK_FIT_S * fps))
    instants = np.array([_peak_time(-rhythm, b, half_width) for b in bottoms]) / fps
    inside = inside_clip(instants, track.frames, fps)
    bottoms, instants = bottoms[inside], instants[inside]
    # Depth and recoil are the hands' own travel, band-passed like the rhythm (a hand moved to
    # another spot of the chest is no stroke).
    height = -_filter(hands[:, 1] - np.median(hands[:, 1]), fps, BAND_HZ) / torso
    shoulders = {s: _filter(_joint(track, f"{s}_shoulder"), fps) for s in ("left", "right")}
    elbows = {s: _filter(_joint(track, f"{s}_elbow"), fps) for s in ("left", "right")}
    elbow = np.mean([_angle(shoulders[s], elbows[s], wrists[s]) for s in pressing], axis=0)
    shoulder_mid = np.mean([shoulders[s] for s in pressing], axis=0)
    arm = hands - shoulder_mid
    tilt = np.degrees(np.arctan2(np.abs(arm[:, 0]), np.maximum(arm[:, 1], 1e-9)))
    times = np.arange(track.frames) / fps
    compressions = []
    for i, bottom in enumerate(bottoms):
        before = bottoms[i - 1] if i else 0
        after = bottoms[i + 1] if i + 1 < len(bottoms) else track.frames - 1
        top_before = float(height[before : bottom + 1].max())
        depth = top_before - float(height[bottom])
        released = float(height[bottom : after + 1].max()) - float(height[bottom])
        compressions.append(
            Compression(
                frame=int(bottom),
                time_s=float(instants[i]),
                rate_per_min=60.0 / float(instants[i] - instants[i - 1]) if i else None,
                depth=depth,
                depth_cm=depth * torso / px_per_cm if px_per_cm else None,
                recoil=min(released / depth, 1.0) if i + 1 < len(bottoms) and depth > 0 else None,
                elbow_deg=float(elbow[bottom]),
                tilt_deg=float(tilt[bottom]),
                hands_x=float(arm[bottom, 0]) / torso,
            )
        )
    return Measurements(
        fps=fps,
        torso_px=torso,
        px_per_cm=px_per_cm,
        hands="both" if len(pressing) == 2 else pressing[0],
        posture=_posture(track, torso),
        compressions=compressions,
        time_s=times,
        height=height,
        elbow_deg=elbow,
        tilt_deg=tilt,
    )


def calibration_of(track: PoseTrack) -> float | None:
    """px_per_cm of the camera that filmed a pose track, where it is calibrated: the synthetic
    recordings' sidecars hold their camera (a real recording has none, and gets relative depths)."""
    from cprcoach.pose.groundtruth import read_sidecar, sidecar_path

    source = track.meta.get("source", {}).get("path")
    if not source or not sidecar_path(source).is_file():
        return None
    truth = read_sidecar(sidecar_path(source))
    return px_per_cm(truth["camera"], truth["chest_point"])


def measure_pose(path: str | Path) -> tuple[PoseTrack, Measurements]:
    """A pose file (cprcoach pose estimate) and its measurements."""
    track = read_pose(path)
    if "fps" not in track.meta:
        raise CprCoachError(
            "the pose file records no frame rate to time the compressions by",
            path=path,
            fix="make it with `cprcoach pose estimate`, which records the clip's",
        )
    return track, measure(track, float(track.meta["fps"]), calibration_of(track))
