"""One video to make (VideoSpec) and the motion of its take (simulate), shared by all its views."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cprcoach.classes import CORRECT
from cprcoach.synth.body import Participant, PoseSequence, make_participant, solve_poses
from cprcoach.synth.motion import ERROR_RANGES, Compressions, MotionParams, apply_errors, compressions

# Stream tags keep the random draws of motion and sensor noise independent of each other.
_MOTION = 0x4D4F54
_NOISE = 0x4E4F49


@dataclass(frozen=True)
class VideoSpec:
    """Everything one worker needs to render one video; picklable."""

    path: Path
    participant: int  # 1-based
    view: str
    view_index: int  # position in the rig
    label: str
    errors: tuple[str, ...]  # the codes of the label's classes (E00 for the correct one)
    error_names: tuple[str, ...]  # their short names, which the physics of each error is keyed by
    multi_hot: tuple[int, ...]
    take: int  # 1-based
    width: int
    height: int
    fps: float
    frames: int
    seed: int
    noise: float
    severity: tuple[float, float] = (0.0, 1.0)  # range each error's severity is drawn from (0 mild, 1 strong)
    # Encoded as a camera would: the raw recordings, not the pipeline's working clips.
    crf: int = 18
    preset: str = "veryfast"

    @property
    def participant_name(self) -> str:
        return f"P{self.participant:02d}"

    @property
    def take_name(self) -> str:
        return f"{self.take:02d}"

    @property
    def label_key(self) -> int:
        """The label as one integer (its multi-hot bits), for seeding without Python's hash()."""
        return sum(bit << i for i, bit in enumerate(self.multi_hot))

    def noise_seeds(self) -> np.ndarray:
        """One sensor-noise seed per frame (differs per view, unlike the motion).

        Seeding every frame keeps the noise reproducible even when frame generators interleave
        (OpenCV's random generator is one per thread).
        """
        entropy = [self.seed, self.participant, self.label_key, self.take, self.view_index, _NOISE]
        return np.random.SeedSequence(entropy).generate_state(max(self.frames, 1)) & 0x7FFFFFFF


@dataclass(frozen=True)
class Take:
    """What the rescuer did: identical in every view of the same participant, label and take."""

    person: Participant
    severity: dict[str, float]  # each error's severity in this take, 0 (mild) to 1 (strong)
    motion: MotionParams
    signal: Compressions
    poses: PoseSequence


def simulate(spec: VideoSpec) -> Take:
    """The take's motion, drawn from (seed, participant, label, take): the view plays no part.

    The participant's habits make the correct motion; each error of the label then changes it at a
    severity drawn from spec.severity.
    """
    person = make_participant(spec.seed, spec.participant)
    rng = np.random.default_rng(
        np.random.SeedSequence([spec.seed, spec.participant, spec.label_key, spec.take, _MOTION])
    )
    correct = MotionParams(
        rate=person.rate * float(rng.uniform(0.98, 1.02)),
        jitter=person.jitter,
        phase=float(person.phase + rng.uniform(-0.15, 0.15)) % 1.0,
        depth=person.depth,
        residual=person.residual,
        hand_offset=person.hand_offset,
        wander=person.wander,
        hand_spread=person.hand_spread,
        arm_reach=person.arm_reach,
        lean_side=person.lean_side,
    )
    low, high = spec.severity
    # Every error draws its severity (so a range added to one leaves the others' draws as they
    # were); the sidecar records it for the errors that have degrees (SingleHand has none).
    drawn = {
        (code, name): round(float(rng.uniform(low, high)), 4)
        for code, name in zip(spec.errors, spec.error_names, strict=True)
        if code != CORRECT
    }
    motion = apply_errors(correct, {name: s for (_, name), s in drawn.items()}, rng)
    severity = {code: s for (code, name), s in drawn.items() if name in ERROR_RANGES}
    signal = compressions(motion, np.arange(spec.frames) / spec.fps, rng)
    hand_jitter = rng.normal(0.0, 0.006, 3) * np.array([1.0, 1.0, 0.0])
    poses = solve_poses(person, motion, signal, hand_jitter)
    # The sidecar stores 0.1 mm; rendering from the same rounded joints keeps the two identical.
    poses = dataclasses.replace(poses, keypoints=np.round(poses.keypoints, 4))
    return Take(person=person, severity=severity, motion=motion, signal=signal, poses=poses)
