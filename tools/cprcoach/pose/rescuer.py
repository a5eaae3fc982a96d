"""Keep one person per video, the rescuer, and never switch to anyone else mid-clip.

Detections are first linked into tracks: by the detector's own track id where every
detection has one (AlphaPose's `idx` with --pose_track), else greedily frame to frame by box
overlap (IoU >= LINK_IOU with the track's last box, seen at most `max_lost` frames ago).

The rule, over whole tracks (so the choice holds for the whole clip):
1. Eligible: tracks present in at least a third of the frames in which anyone is detected;
   a passer-by crossing the view is not the rescuer.
2. Anchored: the wrists stay around one point. The wrist centre (mean of the wrists scored
   >= MIN_SCORE) is low-passed by a one-second moving median; its median distance from its
   own clip median must be <= MAX_DRIFT box heights. A person walking about fails this.
3. Among eligible, anchored tracks the rescuer is the one whose wrists pump up and down the
   most: the standard deviation of the wrist centre's height minus its low-pass (the
   compression rhythm, 1.5-2.5 Hz, passes; slow drifts do not), in units of the track's
   median box height. A bystander standing still has wrists near one point too, but they do
   not pump; that is why the pumping, not the nearness, decides.
4. If no eligible track pumps at least MIN_PUMP (still images, a pause), the eligible track
   with the largest median box area (the person nearest the camera) is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cprcoach.pose.gaps import smooth_found
from cprcoach.skeleton import JOINT

LINK_IOU = 0.2
MIN_SCORE = 0.2
MIN_COVERAGE = 1 / 3
MAX_DRIFT = 0.25
MIN_PUMP = 0.01
WRISTS = [JOINT["left_wrist"], JOINT["right_wrist"]]


@dataclass(frozen=True)
class Person:
    """One detected person in one frame: keypoints (26, 3) and box [x0, y0, x1, y1], same pixels."""

    keypoints: np.ndarray
    box: np.ndarray
    score: float = 1.0
    track: int | None = None


@dataclass
class Track:
    """One person followed over the clip: frame index -> detection."""

    ident: int
    people: dict[int, Person] = field(default_factory=dict)


@dataclass(frozen=True)
class Choice:
    """The kept track and why, with every candidate's figures (for the pose file's meta)."""

    track: Track | None
    reason: str
    candidates: list[dict]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def link_tracks(frames: Sequence[Sequence[Person]], max_lost: int) -> list[Track]:
    """Group per-frame detections into tracks (by the detector's ids when all have one)."""
    people = [p for frame in frames for p in frame]
    if people and all(p.track is not None for p in people):
        tracks: dict[int, Track] = {}
        for t, frame in enumerate(frames):
            for person in frame:
                tracks.setdefault(person.track, Track(person.track)).people.setdefault(t, person)
        return list(tracks.values())
    linked: list[Track] = []
    for t, frame in enumerate(frames):
        live = [track for track in linked if t - max(track.people) <= max_lost + 1]
        pairs = sorted(
            (
                (iou(track.people[max(track.people)].box, person.box), i, j)
                for i, track in enumerate(live)
                for j, person in enumerate(frame)
            ),
            reverse=True,
        )
        used_tracks, used_people = set(), set()
        for overlap, i, j in pairs:
            if overlap < LINK_IOU:
                break
            if i not in used_tracks and j not in used_people:
                live[i].people[t] = frame[j]
                used_tracks.add(i)
                used_people.add(j)
        for j, person in enumerate(frame):
            if j not in used_people:
                linked.append(Track(len(linked), {t: person}))
    return linked


def track_figures(track: Track, frames: int, fps: float) -> dict:
    """Coverage frames, wrist drift and pumping (in box heights) and median box area of one track."""
    index = np.array(sorted(track.people))
    keypoints = np.stack([track.people[t].keypoints for t in index])
    boxes = np.stack([track.people[t].box for t in index])
    heights = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    height = float(np.median(heights))
    wrists = keypoints[:, WRISTS]
    seen = wrists[..., 2] >= MIN_SCORE
    centre = np.zeros((frames, 2), dtype=np.float32)
    have = np.zeros(frames, dtype=bool)
    counts = seen.sum(axis=1)
    ok = counts > 0
    centre[index[ok]] = (wrists[ok, :, :2] * seen[ok, :, None]).sum(axis=1) / counts[ok, None]
    have[index[ok]] = True
    figures = {
        "track": track.ident,
        "frames": len(index),
        "box_area": float(np.median((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))),
        "drift": float("inf"),
        "pump": 0.0,
    }
    if have.sum() >= 3:
        window = max(3, int(round(fps)) | 1)
        low = smooth_found(centre, have, window)[have]
        figures["drift"] = float(np.median(np.linalg.norm(low - np.median(low, axis=0), axis=1)) / height)
        figures["pump"] = float(np.std(centre[have, 1] - low[:, 1]) / height)
    return figures


def choose_rescuer(tracks: Sequence[Track], frames: int, fps: float) -> Choice:
    """Apply the module's rule; a clip where nobody was detected gives Choice(None, ...)."""
    if not tracks:
        return Choice(None, "nobody detected", [])
    anyone = len({t for track in tracks for t in track.people})
    figures = [track_figures(track, frames, fps) for track in tracks]
    by_id = {track.ident: track for track in tracks}
    eligible = [f for f in figures if f["frames"] >= MIN_COVERAGE * anyone]
    pumping = [f for f in eligible if f["drift"] <= MAX_DRIFT and f["pump"] >= MIN_PUMP]
    if pumping:
        best = max(pumping, key=lambda f: f["pump"])
        reason = "wrists pump around one point the most"
    else:
        best = max(eligible, key=lambda f: f["box_area"])
        reason = "nobody's wrists pump: the largest person"
    return Choice(by_id[best["track"]], reason, figures)


def track_arrays(track: Track | None, frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The kept track as dense arrays: keypoints (T, 26, 3), box (T, 4), found (T,)."""
    keypoints = np.zeros((frames, len(JOINT), 3), dtype=np.float32)
    box = np.zeros((frames, 4), dtype=np.float32)
    found = np.zeros(frames, dtype=bool)
    for t, person in track.people.items() if track else ():
        if 0 <= t < frames:
            keypoints[t], box[t], found[t] = person.keypoints, person.box, True
    return keypoints, box, found
