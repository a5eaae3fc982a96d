"""Compression motion: the parameters of one take, the 13 errors as changes of them, the waveform.

Every error is a change of the correct motion's parameters, so a composite class simply
applies the changes of each of its errors in turn (exclusive errors never meet: the class
table guarantees it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

HANDS_INTERLOCKED = "interlocked"
HANDS_OVERLEAP = "overleap"
HANDS_SINGLE = "single"


@dataclass(frozen=True)
class MotionParams:
    """What the rescuer does in one take; the correct motion unless errors changed it."""

    rate: float  # compressions per minute
    jitter: float  # relative standard deviation of each compression's period
    phase: float  # where in the first compression the clip starts, in cycles
    depth: float  # peak compression depth, m
    residual: float = 0.0  # depth still held at the top of each compression (no recoil), m
    bounce: float = 0.0  # height the hands lift off the chest at each release, m
    hand_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)  # hands from the lower sternum, m
    hands: str = HANDS_INTERLOCKED
    arm_reach: float = 1.0  # shoulder-to-wrist distance at the top, as a fraction of the arm's length
    arm_flex: float = 0.0  # further fraction lost at full compression (elbows flex while pushing)
    lean_back: float = 0.0  # how much farther back the rescuer kneels than vertical arms need, m
    lean_side: float = 0.0  # sideways roll of the torso, rad (+ toward the manikin's head)


def _hands_high(p: MotionParams) -> MotionParams:
    """E01: hands toward the neck (the manikin's head is +x)."""
    return dataclasses.replace(p, hand_offset=_shift(p.hand_offset, x=0.08))


def _hands_low(p: MotionParams) -> MotionParams:
    """E02: hands on the xiphoid / upper abdomen (toward the feet, -x)."""
    return dataclasses.replace(p, hand_offset=_shift(p.hand_offset, x=-0.08))


def _hands_left(p: MotionParams) -> MotionParams:
    """E03: hands off the sternum to the rescuer's left, read as the far ribs (+y).

    The rescuer kneels at the patient's side, so the sternum runs along the rescuer's own
    left-right axis; sliding along it is hands high/low (E01/E02). The only sideways
    displacement left off the sternum is across the chest: E03 is taken as away from the
    rescuer (far ribs) and E04 as toward the rescuer (near ribs).
    """
    return dataclasses.replace(p, hand_offset=_shift(p.hand_offset, y=0.07))


def _hands_right(p: MotionParams) -> MotionParams:
    """E04: hands off the sternum to the rescuer's right, read as the near ribs (-y); see E03."""
    return dataclasses.replace(p, hand_offset=_shift(p.hand_offset, y=-0.07))


def _bent_arms(p: MotionParams) -> MotionParams:
    """E05: shoulders held low and close, elbows flexed, flexing further during the push."""
    return dataclasses.replace(p, arm_reach=0.84, arm_flex=0.08)


def _overleap_hands(p: MotionParams) -> MotionParams:
    """E06: hands stacked crosswise without interlocking: wrists apart and crossed."""
    return dataclasses.replace(p, hands=HANDS_OVERLEAP)


def _single_hand(p: MotionParams) -> MotionParams:
    """E07: one hand compresses, the other rests on the thigh."""
    return dataclasses.replace(p, hands=HANDS_SINGLE)


def _rate_fast(p: MotionParams) -> MotionParams:
    """E08: about 150 per minute (the participant's own tempo shifts it a little)."""
    return dataclasses.replace(p, rate=150.0 + 0.5 * (p.rate - 110.0))


def _rate_slow(p: MotionParams) -> MotionParams:
    """E09: about 70 per minute."""
    return dataclasses.replace(p, rate=70.0 + 0.5 * (p.rate - 110.0))


def _too_shallow(p: MotionParams) -> MotionParams:
    """E10: about 2 cm deep instead of 5-6 cm."""
    return dataclasses.replace(p, depth=p.depth * 0.38)


def _no_recoil(p: MotionParams) -> MotionParams:
    """E11: keeps leaning: the chest never comes back to the top between compressions."""
    return dataclasses.replace(p, residual=0.4 * p.depth)


def _bouncing(p: MotionParams) -> MotionParams:
    """E12: the hands leave the chest by several cm at each release."""
    return dataclasses.replace(p, bounce=0.045)


def _not_vertical(p: MotionParams) -> MotionParams:
    """E13: kneels back and leans sideways, so the shoulders are not above the sternum."""
    return dataclasses.replace(p, lean_back=0.17, lean_side=0.22)


def _shift(offset: tuple[float, float, float], x: float = 0.0, y: float = 0.0) -> tuple[float, float, float]:
    return (offset[0] + x, offset[1] + y, offset[2])


ERROR_EFFECTS: dict[str, Callable[[MotionParams], MotionParams]] = {
    "E01": _hands_high,
    "E02": _hands_low,
    "E03": _hands_left,
    "E04": _hands_right,
    "E05": _bent_arms,
    "E06": _overleap_hands,
    "E07": _single_hand,
    "E08": _rate_fast,
    "E09": _rate_slow,
    "E10": _too_shallow,
    "E11": _no_recoil,
    "E12": _bouncing,
    "E13": _not_vertical,
}


def apply_errors(correct: MotionParams, errors: list[str] | tuple[str, ...]) -> MotionParams:
    """The motion of a class: the correct motion changed by each error (E00 changes nothing)."""
    params = correct
    for code in errors:
        if code != "E00":
            params = ERROR_EFFECTS[code](params)
    return params


@dataclass(frozen=True)
class Compressions:
    """The compression signal sampled at the frame times."""

    depth: np.ndarray  # (T,) how far the chest is pressed down, m
    lift: np.ndarray  # (T,) how far the hands are above the chest surface (bouncing), m
    starts: np.ndarray  # start times of the compressions that begin inside the clip, s


def press_profile(u: np.ndarray) -> np.ndarray:
    """Normalised depth over one cycle (0 at the top, 1 at full depth): a smooth press then release.

    The press takes 45 % of the cycle and the release 55 %; sin² keeps both ends flat (C1).
    """
    w = np.where(u < 0.45, u / 0.9, 0.5 + (u - 0.45) / 1.1)
    return np.sin(np.pi * w) ** 2


def compressions(params: MotionParams, times: np.ndarray, rng: np.random.Generator) -> Compressions:
    """Sample depth and hand lift at `times` (s): one period and one depth per compression, jittered."""
    period = 60.0 / params.rate
    duration = float(times[-1]) + period if len(times) else period
    count = int(np.ceil(duration / period * 1.5)) + 2
    jitter = np.clip(rng.standard_normal(count), -2.0, 2.0)
    depth_jitter = np.clip(rng.standard_normal(count), -2.0, 2.0)
    periods = period * (1.0 + params.jitter * jitter)
    starts = -params.phase * period + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    index = np.searchsorted(starts, times, side="right") - 1
    u = (times - starts[index]) / periods[index]
    peak = params.depth * (1.0 + 0.04 * depth_jitter[index])
    shape = press_profile(u)
    depth = params.residual + (peak - params.residual) * shape
    lift = params.bounce * (1.0 - shape) ** 6
    inside = starts[(starts >= 0.0) & (starts <= (times[-1] if len(times) else 0.0))]
    return Compressions(depth=depth, lift=lift, starts=inside)
