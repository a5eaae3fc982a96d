"""The rescuer: participants' bodies and the kinematic pose of a rescuer compressing (kneeling,
squatting or standing).

World frame as in manikin.py: metres, z up, the manikin along x with its head at +x, the
lower sternum at the origin. The rescuer is at y < 0 facing +y, so the rescuer's right
is +x. Joints follow the Halpe-26 order (cprcoach.skeleton).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cprcoach.skeleton import JOINT
from cprcoach.synth.manikin import CHEST_POINT, HALF_WIDTH
from cprcoach.synth.motion import (
    HANDS_CLENCHED,
    HANDS_OVERLAP,
    HANDS_SINGLE,
    IDLE_SIDE,
    KNEELING,
    SQUATTING,
    STANDING,
    Compressions,
    MotionParams,
)

FORWARD = np.array([0.0, 1.0, 0.0])
RIGHT = np.array([1.0, 0.0, 0.0])
UP = np.array([0.0, 0.0, 1.0])

HAND_HEIGHT = 0.035  # wrist joint above the chest surface when the heel of the hand presses it
KNEE_HEIGHT = 0.055  # knee joint centre above the floor when kneeling
ANKLE_HEIGHT = 0.08  # ankle joint above the floor on a flat foot (1.70 m body)
TOE_LENGTH = 0.16  # ankle to big toe along the foot (1.70 m body)
SQUAT_FEET_FORWARD = 0.1  # squatting: the ankles this far in front of the hips (1.70 m body)
SQUAT_KNEE_REACH = 0.7  # squatting: the knees up to this share of a thigh in front of the hips
STAND_FEET_FORWARD = 0.04  # standing: the ankles this far in front of the hips (1.70 m body)
FIST_LENGTH = 0.05  # wrist to knuckles of a fist (1.70 m body)
MAX_PITCH = 2.1  # rad: a standing rescuer bends the torso past horizontal to reach the chest
LOCKED_ELBOW_SLACK = 0.02  # a straight arm still counts as straight this much short of full length

# Body proportions of a 1.70 m adult, in metres; a participant scales them all.
_REFERENCE_HEIGHT = 1.70
_DIMS = {
    "torso": 0.50,  # hip centre to shoulder midpoint
    "upper_arm": 0.30,
    "forearm": 0.26,
    "thigh": 0.44,
    "shin": 0.42,
    "shoulder_half": 0.185,
    "hip_half": 0.115,
    "knee_half": 0.13,
    "neck": 0.045,  # shoulder midpoint to the neck keypoint
    "head": 0.10,  # head radius
    "hand": 0.085,  # wrist to finger tips (drawn, not a keypoint)
}

SHIRTS = (
    (170, 90, 30),
    (40, 40, 180),
    (60, 140, 40),
    (150, 60, 120),
    (30, 130, 200),
    (120, 120, 30),
    (200, 200, 200),
    (70, 60, 200),
    (90, 40, 40),
)
TROUSERS = ((60, 40, 25), (40, 40, 40), (110, 100, 90), (90, 70, 40), (30, 50, 70), (150, 140, 130))
SKINS = ((160, 190, 235), (120, 160, 210), (90, 130, 190), (60, 90, 140), (45, 65, 100))
HAIRS = ((25, 25, 30), (30, 50, 80), (60, 110, 160), (120, 120, 125))


@dataclass(frozen=True)
class Participant:
    """One person of the synthetic dataset: body, clothes and compression habits.

    The habits make each person's correct technique their own (within the guidelines): tempo,
    depth, a little residual pressure, arms not quite locked, a slight lean, where exactly the
    hands go and how much that spot varies from one compression to the next.
    """

    name: str
    height: float  # m
    scale: float  # height / 1.70: every body length is scaled by it
    shirt: tuple[int, int, int]  # BGR
    trousers: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    long_sleeves: bool
    rate: float  # own tempo, compressions per minute (within the correct 100-120)
    jitter: float  # relative standard deviation of a compression's period
    phase: float  # usual start phase in cycles
    depth: float  # own correct depth, m (within 5-6 cm)
    residual: float  # pressure kept at the top of a compression, m (recoil still nearly full)
    arm_reach: float  # shoulder-to-wrist distance at the top, share of the arm (1: locked elbows)
    lean_side: float  # habitual sideways roll of the torso, rad
    hand_offset: tuple[float, float, float]  # habitual hand spot from the lower sternum, m
    wander: float  # standard deviation of each compression's spot, m
    hand_spread: float  # half the distance between the interlocked hands' wrists, m
    kneel_offset: float  # kneels this much closer (+) or farther (-) than exactly vertical arms need, m
    thigh_tilt: float  # forward tilt of the thighs when kneeling, rad

    def dim(self, name: str) -> float:
        return _DIMS[name] * self.scale


def make_participant(seed: int, number: int) -> Participant:
    """Participant `number` (1-based) for a dataset seed: the same arguments give the same person."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, number, 0x50415254]))
    height = float(rng.uniform(1.55, 1.90))
    return Participant(
        name=f"P{number:02d}",
        height=round(height, 3),
        scale=round(height / _REFERENCE_HEIGHT, 4),
        shirt=_jitter_colour(SHIRTS[rng.integers(len(SHIRTS))], rng),
        trousers=_jitter_colour(TROUSERS[rng.integers(len(TROUSERS))], rng),
        skin=_jitter_colour(SKINS[rng.integers(len(SKINS))], rng),
        hair=_jitter_colour(HAIRS[rng.integers(len(HAIRS))], rng),
        long_sleeves=bool(rng.random() < 0.4),
        rate=round(float(rng.uniform(102.0, 118.0)), 2),
        jitter=round(float(rng.uniform(0.015, 0.05)), 4),
        phase=round(float(rng.uniform(0.0, 1.0)), 4),
        depth=round(float(rng.uniform(0.051, 0.059)), 4),
        residual=round(float(rng.uniform(0.0, 0.004)), 4),
        arm_reach=round(float(rng.uniform(0.97, 1.0)), 4),
        lean_side=round(float(rng.uniform(-0.05, 0.05)), 4),
        hand_offset=(round(float(rng.uniform(-0.012, 0.012)), 4), round(float(rng.uniform(-0.008, 0.008)), 4), 0.0),
        wander=round(float(rng.uniform(0.002, 0.006)), 4),
        hand_spread=round(float(rng.uniform(0.018, 0.026)), 4),
        kneel_offset=round(float(rng.uniform(-0.025, 0.025)), 4),
        thigh_tilt=round(float(rng.uniform(0.05, 0.25)), 4),
    )


def _jitter_colour(colour: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * rng.uniform(0.85, 1.15), 0, 255)) for c in colour)  # type: ignore[return-value]


@dataclass(frozen=True)
class PoseSequence:
    """The rescuer over a clip."""

    keypoints: np.ndarray  # (T, 26, 3) Halpe-26 joints, world metres
    hand_tips: np.ndarray  # (T, 2, 3) left and right finger tips (knuckles of a fist), for drawing the hands
    head_centre: np.ndarray  # (T, 3)
    head_up: np.ndarray  # (T, 3) unit vector, for placing the hair
    hands: str  # the hand form (motion.HANDS_*), for drawing a fist as a fist


def solve_poses(
    person: Participant, motion: MotionParams, signal: Compressions, hand_jitter: np.ndarray
) -> PoseSequence:
    """The rescuer's joints for every frame of a take.

    The hands follow the chest (plus their spot, and any lift off it); the hips stay where the
    rescuer kneels, squats or stands (plus any jump); the torso pitch is solved per frame so that
    the arm farther from its hand keeps its prescribed shoulder-to-wrist length (the shoulders'
    circle about the hips meets the sphere of arm length about the hand; found by bisection), so
    the whole upper body rides each compression; knees and elbows come from two-bone IK.
    """
    n = len(signal.depth)
    s = person.dim
    arm = s("upper_arm") + s("forearm")

    # Hand targets: wrist midpoint per frame, raised by a fist's height when the hands are clenched.
    target = CHEST_POINT + np.asarray(motion.hand_offset) + hand_jitter
    wrist_mid = np.tile(target, (n, 1))
    wrist_mid[:, :2] += signal.spot
    wrist_mid[:, 2] += HAND_HEIGHT + motion.fist - signal.depth + signal.hand_lift

    # Where the hips go: at the height of the posture, and placed so that at the top of a correct
    # compression the shoulders are right above the hands with straight arms.
    hip_z = _hip_height(person, motion)
    lateral = s("shoulder_half") - motion.hand_spread
    straight = np.sqrt(arm**2 - lateral**2) * motion.arm_reach
    cos0 = np.clip((target[2] + HAND_HEIGHT + motion.fist + straight - hip_z) / s("torso"), -0.6, 1.0)
    hip_y = target[1] - s("torso") * np.sqrt(1.0 - cos0**2) + person.kneel_offset - motion.lean_back
    # Knees and toes stay clear of the manikin's side, whatever the hands and body proportions ask.
    hip_y = min(hip_y, -HALF_WIDTH - _hip_clearance(person, motion))
    hips = np.tile([target[0], hip_y, hip_z], (n, 1))
    hips[:, 2] += signal.body_lift

    roll = motion.lean_side
    up_r = np.cos(roll) * UP + np.sin(roll) * RIGHT  # torso "up" before pitching forward

    wrists = _wrist_targets(motion, wrist_mid)
    reach = arm * (motion.arm_reach - motion.arm_flex * np.clip(signal.depth / max(motion.depth, 1e-6), 0.0, 1.0))
    arms = (1,) if motion.hands == HANDS_SINGLE else (0, 1)
    torso = _Torso(hips, up_r, s("torso"), s("shoulder_half"), wrists[:, list(arms)].mean(axis=1))
    pitch = _solve_pitch(torso, wrists, reach, arms)

    torso_up = np.sin(pitch)[:, None] * FORWARD + np.cos(pitch)[:, None] * up_r
    chest_front = np.cos(pitch)[:, None] * FORWARD - np.sin(pitch)[:, None] * up_r
    shoulder_mid, side = torso.shoulders(pitch)
    shoulders = np.stack([shoulder_mid - s("shoulder_half") * side, shoulder_mid + s("shoulder_half") * side], axis=1)

    k = np.zeros((n, 26, 3))
    j = JOINT
    k[:, j["hip"]] = hips
    k[:, j["left_hip"]] = hips - s("hip_half") * RIGHT
    k[:, j["right_hip"]] = hips + s("hip_half") * RIGHT
    k[:, j["left_shoulder"]] = shoulders[:, 0]
    k[:, j["right_shoulder"]] = shoulders[:, 1]
    k[:, j["neck"]] = shoulder_mid + s("neck") * torso_up
    _legs(k, person, motion, signal.body_lift)

    if motion.hands == HANDS_SINGLE:
        wrists[:, 0] = _idle_hand(k, person, motion)
    for arm_index, (shoulder_j, elbow_j, wrist_j, sign) in enumerate(
        (
            (j["left_shoulder"], j["left_elbow"], j["left_wrist"], -1.0),
            (j["right_shoulder"], j["right_elbow"], j["right_wrist"], 1.0),
        )
    ):
        shoulder = k[:, shoulder_j]
        wrist = _clamp_reach(shoulder, wrists[:, arm_index], arm)
        pole = sign * side - 0.7 * chest_front + 0.3 * UP
        slack = LOCKED_ELBOW_SLACK * person.scale if arm_index in arms else 0.0
        k[:, elbow_j] = _two_bone_ik(shoulder, wrist, s("upper_arm"), s("forearm"), pole, slack=slack)
        k[:, wrist_j] = wrist

    head_centre, head_up = _head(k, person, pitch, up_r, side, torso_up)
    return PoseSequence(
        keypoints=k,
        hand_tips=_hand_tips(k, person, motion),
        head_centre=head_centre,
        head_up=head_up,
        hands=motion.hands,
    )


def _hip_height(person: Participant, motion: MotionParams) -> float:
    """The hips' height above the floor in the posture: kneeling, squatting or standing."""
    s = person.dim
    if motion.posture == SQUATTING:
        return motion.hip_height * person.scale
    if motion.posture == STANDING:
        return ANKLE_HEIGHT * person.scale + _leg_span(person, motion.knee_flex)
    return KNEE_HEIGHT + s("thigh") * np.cos(person.thigh_tilt)


def _leg_span(person: Participant, knee_flex: float) -> float:
    """Hip-to-ankle distance of a leg whose knee bends by `knee_flex` rad."""
    a, b = person.dim("thigh"), person.dim("shin")
    return float(np.sqrt(a * a + b * b + 2 * a * b * np.cos(knee_flex)))


def _hip_clearance(person: Participant, motion: MotionParams) -> float:
    """How far behind the manikin's side the hips must stay so that knees and toes do not enter it."""
    if motion.posture == KNEELING:
        return 0.12 + person.dim("thigh") * np.sin(person.thigh_tilt)
    if motion.posture == SQUATTING:
        return 0.06 + SQUAT_KNEE_REACH * person.dim("thigh")
    return 0.04 + (STAND_FEET_FORWARD + TOE_LENGTH) * person.scale


def _wrist_targets(motion: MotionParams, wrist_mid: np.ndarray) -> np.ndarray:
    """(T, 2, 3) left and right wrist targets for the hand form."""
    half = motion.hand_spread * RIGHT
    if motion.hands == HANDS_SINGLE:
        # The right hand alone, centred; the left is placed once the body is known.
        return np.stack([wrist_mid, wrist_mid], axis=1)
    if motion.hands == HANDS_OVERLAP:
        # Crossed without interlock: each wrist sits on the other hand's side, apart from it.
        return np.stack([wrist_mid + half - 0.012 * FORWARD, wrist_mid - half + 0.012 * FORWARD], axis=1)
    return np.stack([wrist_mid - half, wrist_mid + half], axis=1)


@dataclass(frozen=True)
class _Torso:
    """The torso hinged at the hips: where the shoulders are for a given forward pitch."""

    hip: np.ndarray  # (T, 3) hip centre
    up: np.ndarray  # torso axis at zero pitch (rolled sideways when the rescuer leans)
    length: float
    half_width: float
    hands: np.ndarray  # (T, 3) midpoint of the hands that push

    def shoulders(self, pitch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Shoulder midpoint and the unit shoulder line (toward the right shoulder).

        The shoulder girdle tilts so that the line stays square to the arms' direction: a
        rescuer leaning sideways keeps both arms equally long instead of bending one.
        """
        mid = self.hip + self.length * (np.sin(pitch)[..., None] * FORWARD + np.cos(pitch)[..., None] * self.up)
        arms = mid - self.hands
        arms /= np.linalg.norm(arms, axis=-1, keepdims=True)
        side = RIGHT - (arms @ RIGHT)[..., None] * arms
        return mid, side / np.linalg.norm(side, axis=-1, keepdims=True)


def _solve_pitch(torso: _Torso, wrists: np.ndarray, reach: np.ndarray, arms: tuple[int, ...]) -> np.ndarray:
    """Torso pitch per frame: the smallest forward lean at which the arm farthest from its hand
    is exactly `reach` long (upright if even that is too close, the closest approach if out of reach)."""
    offsets = (-torso.half_width, torso.half_width)

    def farthest(pitch: np.ndarray) -> np.ndarray:
        mid, side = torso.shoulders(pitch)
        return np.max([np.linalg.norm(mid + offsets[a] * side - wrists[:, a], axis=-1) for a in arms], axis=0)

    grid = np.linspace(0.0, MAX_PITCH, 241)
    distances = np.stack([farthest(np.full(len(reach), g)) for g in grid], axis=1)
    hi = grid[np.argmin(distances, axis=1)]
    lo = np.zeros_like(hi)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        too_far = farthest(mid) > reach
        lo = np.where(too_far, mid, lo)
        hi = np.where(too_far, hi, mid)
    return 0.5 * (lo + hi)


def _legs(k: np.ndarray, person: Participant, motion: MotionParams, lift: np.ndarray) -> None:
    """Knees, ankles and feet for the posture, below the hips that `k` already holds.

    Kneeling: knees on the floor below and behind the hips, shins flat behind, feet with the instep
    down. Squatting: feet flat in front of the hips, knees up and apart. Standing: feet flat under
    the hips, knees a little bent. A jump (`lift`, per frame) lifts the knees and ankles too; the
    toes stay on the floor.
    """
    s = person.dim
    j = JOINT
    up = lift[:, None] * UP
    for name, sign in (("left", -1.0), ("right", 1.0)):
        hip = k[:, j[f"{name}_hip"]]
        rest = hip - up  # the hip where the posture puts it, before any jump
        if motion.posture == KNEELING:
            knee = rest + np.array(
                [sign * (s("knee_half") - s("hip_half")), -s("thigh") * np.sin(person.thigh_tilt), 0.0]
            )
            knee[:, 2] = KNEE_HEIGHT
            ankle = knee + np.array([-sign * 0.02, -np.sqrt(s("shin") ** 2 - 0.02**2), 0.0])
            ankle[:, 2] = 0.075 * person.scale
            heel = ankle + np.array([0.0, -0.03, 0.05]) * person.scale
            toe = ankle + np.array([-sign * 0.02, -0.16, -0.045]) * person.scale
            small = toe + np.array([sign * 0.045, 0.03, 0.0]) * person.scale
            knee = knee + 0.8 * up
            ankle, heel = ankle + 0.4 * up, heel + 0.4 * up
        else:
            forward = SQUAT_FEET_FORWARD if motion.posture == SQUATTING else STAND_FEET_FORWARD
            ankle = rest + np.array([sign * 0.02, forward * person.scale, 0.0])
            ankle[:, 2] = ANKLE_HEIGHT * person.scale
            toe = ankle + np.array([-sign * 0.015, TOE_LENGTH, -0.06]) * person.scale
            small = toe + np.array([sign * 0.045, -0.03, 0.0]) * person.scale
            heel = ankle + np.array([0.0, -0.05, -0.06]) * person.scale
            ankle, heel = ankle + 0.6 * up, heel + 0.6 * up
            # Squatting knees point forward and apart, standing knees forward.
            splay = 0.8 if motion.posture == SQUATTING else 0.1
            pole = np.tile(FORWARD + splay * sign * RIGHT + 0.3 * UP, (len(hip), 1))
            knee = _two_bone_ik(hip, ankle, s("thigh"), s("shin"), pole)
        k[:, j[f"{name}_knee"]] = knee
        k[:, j[f"{name}_ankle"]] = ankle
        k[:, j[f"{name}_heel"]] = heel
        k[:, j[f"{name}_big_toe"]] = toe
        k[:, j[f"{name}_small_toe"]] = small


def _idle_hand(k: np.ndarray, person: Participant, motion: MotionParams) -> np.ndarray:
    """Where the free left hand is: on the front of the left thigh, or hanging beside the body."""
    if motion.idle_hand == IDLE_SIDE:
        shoulder = k[:, JOINT["left_shoulder"]]
        reach = 0.95 * (person.dim("upper_arm") + person.dim("forearm"))
        hang = shoulder - 0.06 * person.scale * RIGHT - reach * UP
        hang[:, 2] = np.maximum(hang[:, 2], 0.05)
        return hang
    hip, knee = k[:, JOINT["left_hip"]], k[:, JOINT["left_knee"]]
    return hip + 0.55 * (knee - hip) + np.array([-0.02, 0.0, 0.07]) * person.scale


def _clamp_reach(shoulder: np.ndarray, target: np.ndarray, length: float) -> np.ndarray:
    """The target, or the nearest point the arm can reach toward it."""
    vector = target - shoulder
    distance = np.linalg.norm(vector, axis=-1, keepdims=True)
    return np.where(distance > length, shoulder + vector * (length / distance), target)


def _two_bone_ik(
    root: np.ndarray, end: np.ndarray, a: float, b: float, pole: np.ndarray, slack: float = 0.0
) -> np.ndarray:
    """Middle joint of a two-bone chain root-end with bone lengths a, b, bending toward `pole`.

    Up to `slack` metres short of full extension the chain stays straight (both bones
    shortened in proportion): a locked elbow absorbs that much in the wrist and the hand,
    where exact IK would fold it by 15 degrees for a few millimetres.
    """
    vector = end - root
    d = np.linalg.norm(vector, axis=-1, keepdims=True)
    axis = vector / d
    shrink = np.clip((a + b - slack) / (a + b), 0.0, 1.0)
    a_eff = np.where(d >= a + b - slack, a * d / (a + b), a * shrink)
    b_eff = np.where(d >= a + b - slack, b * d / (a + b), b * shrink)
    d = np.clip(d, np.abs(a_eff - b_eff) + 1e-6, a_eff + b_eff)
    cos_a = np.clip((a_eff * a_eff + d * d - b_eff * b_eff) / (2 * a_eff * d), -1.0, 1.0)
    bend = pole - np.sum(pole * axis, axis=-1, keepdims=True) * axis
    bend /= np.linalg.norm(bend, axis=-1, keepdims=True)
    return root + a_eff * cos_a * axis + a_eff * np.sqrt(1.0 - cos_a**2) * bend


def _head(
    k: np.ndarray, person: Participant, pitch: np.ndarray, up_r: np.ndarray, side: np.ndarray, torso_up: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Head, face and neck follow the torso; the head stays more upright, looking down at the hands."""
    s = person.dim
    j = JOINT
    head_pitch = 0.55 * pitch
    up = np.sin(head_pitch)[:, None] * FORWARD + np.cos(head_pitch)[:, None] * up_r
    face = np.cos(head_pitch)[:, None] * FORWARD - np.sin(head_pitch)[:, None] * up_r
    face = face + 0.35 * (-up)  # gaze tilted down toward the chest
    face /= np.linalg.norm(face, axis=-1, keepdims=True)
    direction = torso_up + up
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    centre = k[:, j["neck"]] + 0.12 * person.scale * direction
    r = s("head")
    k[:, j["nose"]] = centre + r * (0.98 * face - 0.12 * up)
    for name, sign in (("left", -1.0), ("right", 1.0)):
        k[:, j[f"{name}_eye"]] = centre + r * (0.82 * face + 0.28 * up + sign * 0.33 * side)
        k[:, j[f"{name}_ear"]] = centre + r * (-0.05 * face + 0.05 * up + sign * 0.78 * side)
    k[:, j["head"]] = centre + 1.1 * r * up
    return centre, up


def _hand_tips(k: np.ndarray, person: Participant, motion: MotionParams) -> np.ndarray:
    """Finger tips: flat on the chest pointing across it (crossed when overlapped, spread outward);
    a fist's knuckles just below the wrist; an idle hand continues its forearm."""
    tips = []
    for name, sign in (("left", -1.0), ("right", 1.0)):
        wrist, elbow = k[:, JOINT[f"{name}_wrist"]], k[:, JOINT[f"{name}_elbow"]]
        along = wrist - elbow
        length = person.dim("hand")
        if motion.hands == HANDS_SINGLE and name == "left":
            direction = along
        elif motion.hands == HANDS_CLENCHED:
            direction = along + 0.5 * FORWARD
            length = FIST_LENGTH * person.scale
        else:
            flat = np.concatenate([0.4 * along[:, :2], np.full((len(wrist), 1), -0.04)], axis=1) + FORWARD
            # Overlapped hands cross: each points to the other's side.
            direction = flat - 0.8 * sign * RIGHT if motion.hands == HANDS_OVERLAP else flat
        direction = direction / np.linalg.norm(direction, axis=-1, keepdims=True)
        tips.append(wrist + length * direction)
    return np.stack(tips, axis=1)
