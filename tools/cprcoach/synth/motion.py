"""Compression motion: the parameters of one take, the 13 official errors as changes of them, the waveform.

Every error is a physical change of the correct motion (classes.md says what the camera sees), so a
composite class applies the changes of each of its errors in turn (errors of one exclusive group
never meet: the class table guarantees it). Each error comes with a severity in [0, 1] drawn per
take: 0 is its mildest form, 1 its strongest (the ranges are in ERROR_RANGES), so the dataset holds
errors that are easy and hard to see, as real trainees make them. Errors are named by the class
table's short names, which tie each physical change to its class whatever the table's order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

HANDS_INTERLOCKED = "interlocked"
HANDS_OVERLAP = "overlap"
HANDS_CLENCHED = "clenched"
HANDS_SINGLE = "single"
IDLE_THIGH = "thigh"
IDLE_SIDE = "side"
KNEELING = "kneeling"
SQUATTING = "squatting"
STANDING = "standing"


@dataclass(frozen=True)
class MotionParams:
    """What the rescuer does in one take; the correct motion unless errors changed it."""

    rate: float  # compressions per minute
    jitter: float  # relative standard deviation of each compression's period
    phase: float  # where in the first compression the clip starts, in cycles
    depth: float  # peak compression depth, m
    residual: float = 0.0  # depth still held at the top of each compression (a habit), m
    hand_lift: float = 0.0  # height the hands leave the chest at each release (jump pressing), m
    body_lift: float = 0.0  # height the hips rise at each release (jump pressing), m
    hand_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # hands from the lower sternum, m
    wander: float = 0.002  # standard deviation of each compression's own hand spot, m
    hands: str = HANDS_INTERLOCKED
    hand_spread: float = 0.022  # half the distance between the wrists, m
    fist: float = 0.0  # how far the clenched fists raise the wrists above the interlocked hands', m
    idle_hand: str = IDLE_THIGH  # where the free hand of a single-hand compression is
    arm_reach: float = 1.0  # shoulder-to-wrist distance at the top, as a fraction of the arm's length
    arm_flex: float = 0.0  # further fraction lost at full compression (elbows flex while pushing)
    lean_back: float = 0.0  # how much farther back the rescuer is than vertical arms need, m
    lean_side: float = 0.0  # sideways roll of the torso, rad (+ toward the manikin's head)
    posture: str = KNEELING
    hip_height: float = 0.0  # squatting: the hips' height above the floor for a 1.70 m body, m
    knee_flex: float = 0.0  # standing: how far the knees bend, rad


@dataclass(frozen=True)
class ErrorRange:
    """An error's mildest (severity 0) and strongest (severity 1) values."""

    mild: float
    strong: float

    def at(self, severity: float) -> float:
        return self.mild + (self.strong - self.mild) * float(severity)


# The magnitude of each error from mild to strong, in the units of the parameter it sets.
ERROR_RANGES: dict[str, dict[str, ErrorRange]] = {
    "overlap_hands": {"hand_spread": ErrorRange(0.05, 0.1)},  # wrists apart, crossed, m
    "clenching_hands": {"fist": ErrorRange(0.02, 0.04), "hand_spread": ErrorRange(0.012, 0.006)},
    "bending_arms": {"arm_reach": ErrorRange(0.93, 0.8), "arm_flex": ErrorRange(0.04, 0.1)},
    "tilting_arms": {"lean_back": ErrorRange(0.1, 0.22), "lean_side": ErrorRange(0.12, 0.3)},
    "jump_pressing": {"hand_lift": ErrorRange(0.008, 0.04), "body_lift": ErrorRange(0.012, 0.07)},
    "squatting": {"hip_height": ErrorRange(0.5, 0.36)},  # hips above the floor, m for 1.70 m
    "standing": {"knee_flex": ErrorRange(0.5, 0.08)},  # rad
    "wrong_position": {"offset": ErrorRange(0.06, 0.13)},  # m from the lower sternum
    "insufficient_pressing": {"depth": ErrorRange(0.04, 0.015)},  # m
    "slow_frequency": {"rate": ErrorRange(90.0, 60.0)},  # per minute
    "excessive_pressing": {"depth": ErrorRange(0.068, 0.09)},  # m
    "random_position_pressing": {"wander": ErrorRange(0.05, 0.09)},  # m, each compression's spot
}

# Wrong position: too high (toward the neck, +x), too low (the abdomen, -x), or off the sternum to
# either side (across the chest, the rescuer's far or near ribs).
WRONG_SPOTS = ((1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0))


def _range(name: str, key: str, severity: float) -> float:
    return ERROR_RANGES[name][key].at(severity)


def _overlap_hands(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """Hands one on the other but crossed, fingers not interlocked, spread on the ribs."""
    return dataclasses.replace(p, hands=HANDS_OVERLAP, hand_spread=_range("overlap_hands", "hand_spread", s))


def _clenching_hands(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """One hand clasps the other's fist, which presses with the knuckles: the wrists sit close
    together and higher, by the height of the fist."""
    return dataclasses.replace(
        p,
        hands=HANDS_CLENCHED,
        fist=_range("clenching_hands", "fist", s),
        hand_spread=_range("clenching_hands", "hand_spread", s),
    )


def _single_hand(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """One hand compresses; the other hangs at the side or rests on the thigh (no degrees: s is unused)."""
    return dataclasses.replace(p, hands=HANDS_SINGLE, idle_hand=(IDLE_THIGH, IDLE_SIDE)[int(rng.integers(2))])


def _bending_arms(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """The shoulders are held low and close, the elbows flexed, and they flex further during the push."""
    return dataclasses.replace(
        p, arm_reach=_range("bending_arms", "arm_reach", s), arm_flex=_range("bending_arms", "arm_flex", s)
    )


def _tilting_arms(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """Straight arms slanted from vertical: the rescuer is back from the hands, leans to one side, or both."""
    back, side = ((True, False), (False, True), (True, True))[int(rng.integers(3))]
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return dataclasses.replace(
        p,
        lean_back=p.lean_back + (_range("tilting_arms", "lean_back", s) if back else 0.0),
        lean_side=p.lean_side + (sign * _range("tilting_arms", "lean_side", s) if side else 0.0),
    )


def _jump_pressing(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """The whole body bounces: hips and knees lift with each release, the hands leave the chest."""
    return dataclasses.replace(
        p,
        hand_lift=_range("jump_pressing", "hand_lift", s),
        body_lift=_range("jump_pressing", "body_lift", s),
        residual=0.0,
    )


def _squatting(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """Squatting on the feet (knees up, hips low) instead of kneeling."""
    return dataclasses.replace(p, posture=SQUATTING, hip_height=_range("squatting", "hip_height", s))


def _standing(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """Standing on straight or slightly bent legs, bent over at the waist."""
    return dataclasses.replace(p, posture=STANDING, knee_flex=_range("standing", "knee_flex", s))


def _wrong_position(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """The hands press one wrong spot all along: too high, too low, or to one side of the sternum."""
    dx, dy = WRONG_SPOTS[int(rng.integers(len(WRONG_SPOTS)))]
    distance = _range("wrong_position", "offset", s)
    x, y, z = p.hand_offset
    return dataclasses.replace(p, hand_offset=(x + dx * distance, y + dy * distance, z))


def _insufficient_pressing(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """Too shallow, well under 5 cm."""
    return dataclasses.replace(p, depth=_range("insufficient_pressing", "depth", s))


def _slow_frequency(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """Too slow, well under 100 a minute (the participant's own tempo shifts it a little)."""
    return dataclasses.replace(p, rate=_range("slow_frequency", "rate", s) + 0.3 * (p.rate - 110.0))


def _excessive_pressing(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """Too deep, well over 6 cm: the rescuer drops the body onto the chest."""
    return dataclasses.replace(p, depth=_range("excessive_pressing", "depth", s))


def _random_position_pressing(p: MotionParams, s: float, rng: np.random.Generator) -> MotionParams:
    """The hands wander: each compression lands on another spot of the chest."""
    return dataclasses.replace(p, wander=_range("random_position_pressing", "wander", s))


ERROR_EFFECTS: dict[str, Callable[[MotionParams, float, np.random.Generator], MotionParams]] = {
    "overlap_hands": _overlap_hands,
    "clenching_hands": _clenching_hands,
    "single_hand": _single_hand,
    "bending_arms": _bending_arms,
    "tilting_arms": _tilting_arms,
    "jump_pressing": _jump_pressing,
    "squatting": _squatting,
    "standing": _standing,
    "wrong_position": _wrong_position,
    "insufficient_pressing": _insufficient_pressing,
    "slow_frequency": _slow_frequency,
    "excessive_pressing": _excessive_pressing,
    "random_position_pressing": _random_position_pressing,
}


def apply_errors(correct: MotionParams, severities: Mapping[str, float], rng: np.random.Generator) -> MotionParams:
    """The motion of a class: the correct motion changed by each of its errors (short name -> severity)."""
    params = correct
    for name, severity in severities.items():
        params = ERROR_EFFECTS[name](params, severity, rng)
    return params


@dataclass(frozen=True)
class Compressions:
    """The compression signal sampled at the frame times."""

    depth: np.ndarray  # (T,) how far the chest is pressed down, m
    hand_lift: np.ndarray  # (T,) how far the hands are above the chest surface, m
    body_lift: np.ndarray  # (T,) how far the hips are above where they kneel, squat or stand, m
    spot: np.ndarray  # (T, 2) where the hands press, x and y from the take's own spot, m
    starts: np.ndarray  # start times of the compressions that begin inside the clip, s


def press_profile(u: np.ndarray) -> np.ndarray:
    """Normalised depth over one cycle (0 at the top, 1 at full depth): a smooth press then release.

    The press takes 45 % of the cycle and the release 55 %; sin² keeps both ends flat (C1).
    """
    w = np.where(u < 0.45, u / 0.9, 0.5 + (u - 0.45) / 1.1)
    return np.sin(np.pi * w) ** 2


def compressions(params: MotionParams, times: np.ndarray, rng: np.random.Generator) -> Compressions:
    """Sample depth, lifts and hand spot at `times` (s): one period, depth and spot per compression, jittered.

    The hands move to a compression's spot in the first fifth of its cycle, while the chest is
    still near the top, and stay there for the rest of it.
    """
    period = 60.0 / params.rate
    duration = float(times[-1]) + period if len(times) else period
    count = int(np.ceil(duration / period * 1.5)) + 2
    jitter = np.clip(rng.standard_normal(count), -2.0, 2.0)
    depth_jitter = np.clip(rng.standard_normal(count), -2.0, 2.0)
    spots = np.clip(rng.standard_normal((count, 2)), -2.5, 2.5) * params.wander
    periods = period * (1.0 + params.jitter * jitter)
    starts = -params.phase * period + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    index = np.searchsorted(starts, times, side="right") - 1
    u = (times - starts[index]) / periods[index]
    peak = params.depth * (1.0 + 0.04 * depth_jitter[index])
    shape = press_profile(u)
    depth = params.residual + (peak - params.residual) * shape
    released = (1.0 - shape) ** 2
    moving = np.clip(u / 0.2, 0.0, 1.0)[:, None]
    previous = spots[np.maximum(index - 1, 0)]
    inside = starts[(starts >= 0.0) & (starts <= (times[-1] if len(times) else 0.0))]
    return Compressions(
        depth=depth,
        hand_lift=params.hand_lift * released**3,
        body_lift=params.body_lift * released,
        spot=previous + (spots[index] - previous) * (3 * moving**2 - 2 * moving**3),
        starts=inside,
    )
