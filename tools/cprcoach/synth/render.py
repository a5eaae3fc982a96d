"""Drawing the scene with OpenCV: room, floor, manikin, rescuer, sensor noise.

Every solid is a union of spheres; its picture is the convex hull of the spheres' projected
discs, filled anti-aliased. Shading is three nested fills (dark rim, mid tone, lit core
shifted toward the light), and solids are painted far to near. The room (shaded walls and
the textured floor warped by its homography) is made once per camera and participant; the
static manikin and contact shadows once per video; each frame then draws only the moving
chest and the rescuer, and adds Gaussian sensor noise.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from cprcoach.synth import manikin
from cprcoach.synth.body import Participant, PoseSequence
from cprcoach.synth.camera import TARGET, Camera, make_camera
from cprcoach.synth.motion import HANDS_CLENCHED
from cprcoach.synth.take import Take, VideoSpec, simulate

LIGHT = np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0])
# (radius scale, shift toward the light in radii, brightness) of the three shading fills.
SHADES = ((1.0, 0.0, 0.6), (0.82, 0.18, 0.84), (0.52, 0.4, 1.04))
SHIFT = 4  # sub-pixel bits of the fills
SHOES = (40, 40, 45)
FIST_RADII = (0.042, 0.04)  # wrist and knuckles of a clenched hand, for a 1.70 m body
EYES = (45, 35, 35)

# The room: its floor rectangle (world metres, x0, y0, x1, y1) with walls on its edges, and the ceiling height.
FLOOR = (-3.5, -4.0, 3.5, 3.2)
CEILING = 3.4


@dataclass(frozen=True)
class Solid:
    centres: np.ndarray  # (n, 3) world
    radii: np.ndarray  # (n,)
    colour: tuple[int, int, int]  # BGR


# The rescuer's solids: (points, radii relative to a 1.70 m body, material). Points index the
# Halpe-26 joints, then the extra points of _points(): 26/27 left/right finger tips, 28 head
# centre, 29 hair centre, 30/31 left/right shoulders pulled in toward the neck, 32 mid-chest.
_BODY: tuple[tuple[tuple[int, ...], tuple[float, ...], str], ...] = (
    ((11, 12), (0.10, 0.10), "trousers"),
    ((11, 12, 30, 31, 32), (0.10, 0.10, 0.08, 0.08, 0.115), "shirt"),
    ((11, 13), (0.085, 0.06), "trousers"),
    ((12, 14), (0.085, 0.06), "trousers"),
    ((13, 15), (0.055, 0.04), "trousers"),
    ((14, 16), (0.055, 0.04), "trousers"),
    ((24, 20, 22), (0.035, 0.025, 0.022), "shoes"),
    ((25, 21, 23), (0.035, 0.025, 0.022), "shoes"),
    ((5, 7), (0.055, 0.045), "shirt"),
    ((6, 8), (0.055, 0.045), "shirt"),
    ((7, 9), (0.042, 0.03), "sleeve"),
    ((8, 10), (0.042, 0.03), "sleeve"),
    ((9, 26), (0.032, 0.024), "hand"),
    ((10, 27), (0.032, 0.024), "hand"),
    ((18, 28), (0.05, 0.05), "skin"),
    ((28,), (0.10,), "skin"),
    ((29,), (0.094,), "hair"),
    ((1,), (0.01,), "eyes"),
    ((2,), (0.01,), "eyes"),
)


def _points(poses: PoseSequence, scale: float) -> np.ndarray:
    """(T, 33, 3): the joints plus the extra points the body's solids hang on."""
    k = poses.keypoints
    face = k[:, 0] - poses.head_centre
    face /= np.linalg.norm(face, axis=-1, keepdims=True)
    hair = poses.head_centre + scale * (0.025 * poses.head_up - 0.04 * face)
    neck = k[:, 18]
    shoulders = [
        k[:, i]
        + 0.3 * (neck - k[:, i])
        - 0.03 * scale * (neck - k[:, 19]) / np.linalg.norm(neck - k[:, 19], axis=-1, keepdims=True)
        for i in (5, 6)
    ]
    chest = 0.55 * neck + 0.45 * k[:, 19]
    extra = np.stack([poses.hand_tips[:, 0], poses.hand_tips[:, 1], poses.head_centre, hair, *shoulders, chest], axis=1)
    return np.concatenate([k, extra], axis=1)


def _materials(person: Participant) -> dict[str, tuple[int, int, int]]:
    return {
        "shirt": person.shirt,
        "sleeve": person.shirt if person.long_sleeves else person.skin,
        "trousers": person.trousers,
        "skin": person.skin,
        "hand": person.skin,
        "hair": person.hair,
        "shoes": SHOES,
        "eyes": EYES,
    }


def rescuer_solids(points: np.ndarray, person: Participant, hands: str) -> list[Solid]:
    """The rescuer's solids for one frame's points (33, 3); clenched hands are drawn as fists."""
    colours = _materials(person)
    return [
        Solid(
            points[list(idx)],
            np.array(FIST_RADII if material == "hand" and hands == HANDS_CLENCHED else radii) * person.scale,
            colours[material],
        )
        for idx, radii, material in _BODY
    ]


def draw_solids(image: np.ndarray, camera: Camera, solids: list[Solid], *, sort: bool = True) -> None:
    """Paint shaded solids onto `image` in place, far to near (or in the given order)."""
    if not solids:
        return
    centres = np.concatenate([s.centres for s in solids])
    radii = np.concatenate([s.radii for s in solids])
    bounds = np.cumsum([0] + [len(s.radii) for s in solids])
    focal = camera.K[0, 0]
    layers = []
    for scale, shift, brightness in SHADES:
        cam = camera.to_camera(centres + (shift * radii)[:, None] * LIGHT)
        z = np.maximum(cam[:, 2], 1e-3)
        uv = (cam @ camera.K.T)[:, :2] / z[:, None]
        layers.append((uv, focal * scale * radii / z, brightness))
    depth = camera.to_camera(centres)[:, 2]
    order = range(len(solids))
    if sort:
        order = sorted(order, key=lambda i: -float(depth[bounds[i] : bounds[i + 1]].mean()))
    for i in order:
        a, b = bounds[i], bounds[i + 1]
        if depth[a:b].min() <= 0.05:
            continue
        for uv, r_px, brightness in layers:
            circle = _circle(float(r_px[a:b].max()))
            pts = uv[a:b, None, :] + r_px[a:b, None, None] * circle
            pts = np.round(pts.reshape(-1, 2) * (1 << SHIFT)).astype(np.int32)
            hull = cv2.convexHull(pts)
            colour = tuple(min(255, int(c * brightness)) for c in solids[i].colour)
            cv2.fillConvexPoly(image, hull, colour, cv2.LINE_AA, SHIFT)


def _circle(radius_px: float) -> np.ndarray:
    """Unit polygon with enough vertices that a disc of this radius looks round."""
    return _unit_polygon(int(np.clip(2 ** np.ceil(np.log2(max(radius_px, 1.0) * 1.2)), 12, 96)))


@functools.cache
def _unit_polygon(vertices: int) -> np.ndarray:
    angles = np.arange(vertices) * (2 * np.pi / vertices)
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


# ---------------------------------------------------------------------------- room


def _room_rng(seed: int, participant: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, participant, 0x524F4F4D]))


def _floor_texture(rng: np.random.Generator, ppm: float) -> np.ndarray:
    """Planks or tiles over the FLOOR rectangle at `ppm` pixels per metre (row = +y, column = +x).

    Layout and colours are drawn in metres, so the pattern is the same at every resolution.
    """
    x0, y0, x1, y1 = FLOOR
    width, height = int(round((x1 - x0) * ppm)), int(round((y1 - y0) * ppm))
    planks = rng.random() < 0.6
    if planks:
        base = np.array([rng.uniform(60, 100), rng.uniform(100, 140), rng.uniform(150, 190)])
        grain = cv2.resize(
            rng.standard_normal((int((y1 - y0) / 0.01), int((x1 - x0) / 0.15))).astype(np.float32),
            (width, height),
            interpolation=cv2.INTER_CUBIC,
        )
    else:
        base = np.full(3, rng.uniform(150, 200)) * rng.uniform(0.92, 1.08, 3)
        grain = cv2.resize(
            rng.standard_normal((int((y1 - y0) / 0.03), int((x1 - x0) / 0.03))).astype(np.float32),
            (width, height),
            interpolation=cv2.INTER_CUBIC,
        )
    shade = np.ones((height, width), np.float32)
    joints = []
    if planks:
        board = 0.14
        for row in range(int(np.ceil((y1 - y0) / board))):
            x = x0 - rng.uniform(0.0, 1.2)
            while x < x1:
                length = rng.uniform(0.8, 1.6)
                box = ((x - x0) * ppm, row * board * ppm, (x + length - x0) * ppm, (row + 1) * board * ppm)
                cv2.rectangle(shade, _pt(box[0], box[1]), _pt(box[2], box[3]), float(rng.uniform(0.82, 1.15)), -1)
                joints.append((box[0], box[1], box[0], box[3]))
                x += length
            joints.append((0.0, row * board * ppm, float(width), row * board * ppm))
    else:
        tile = 0.40
        for row in range(int(np.ceil((y1 - y0) / tile))):
            for col in range(int(np.ceil((x1 - x0) / tile))):
                box = (col * tile * ppm, row * tile * ppm, (col + 1) * tile * ppm, (row + 1) * tile * ppm)
                cv2.rectangle(shade, _pt(box[0], box[1]), _pt(box[2], box[3]), float(rng.uniform(0.9, 1.08)), -1)
        joints += [(0.0, r * tile * ppm, float(width), r * tile * ppm) for r in range(int(np.ceil((y1 - y0) / tile)))]
        joints += [(c * tile * ppm, 0.0, c * tile * ppm, float(height)) for c in range(int(np.ceil((x1 - x0) / tile)))]
    thickness = max(1, int(round(0.006 * ppm)))
    for xa, ya, xb, yb in joints:
        cv2.line(shade, _pt(xa, ya), _pt(xb, yb), 0.55, thickness, cv2.LINE_AA)
    shade *= 1.0 + (0.07 if planks else 0.04) * grain
    return cv2.merge([cv2.convertScaleAbs(shade, alpha=float(c)) for c in base])


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x)), int(round(y))


@functools.lru_cache(maxsize=8)
def room(seed: int, participant: int, view_index: int, view: str, width: int, height: int) -> np.ndarray:
    """The empty room seen by one camera: textured floor, shaded walls and ceiling (read-only).

    Each pixel's ray is traced to the first of the room box's six planes it meets; floor
    pixels take the texture through the floor homography, the others a flat wall shade.
    """
    camera = make_camera(view_index, view, width, height)
    rng = _room_rng(seed, participant)
    wall = np.array([rng.uniform(150, 205), rng.uniform(150, 205), rng.uniform(150, 205)], np.float32)
    skirting = wall * np.float32(rng.uniform(0.45, 0.6))

    rays = (camera.R.T @ np.linalg.inv(camera.K)).astype(np.float32)
    u, v = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    direction = [rays[i, 0] * u + rays[i, 1] * v + rays[i, 2] for i in range(3)]
    centre = camera.centre
    x0, y0, x1, y1 = FLOOR
    nearest = np.full((height, width), np.inf, np.float32)
    surface = np.zeros((height, width), np.uint8)
    planes = ((2, 0.0), (2, CEILING), (0, x0), (0, x1), (1, y0), (1, y1))  # floor, ceiling, walls
    for index, (axis, value) in enumerate(planes):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (value - centre[axis]) / direction[axis]
        hit = (t > 0) & (t < nearest)
        nearest[hit] = t[hit]
        surface[hit] = index
    height_at = centre[2] + nearest * direction[2]
    # Walls facing the light differ a little in tone; each darkens toward the floor, then skirting.
    tone = np.array([1.0, 1.08, 0.86, 0.92, 0.97, 1.02], np.float32)[surface] * (
        0.82 + 0.18 * np.clip(height_at / CEILING, 0, 1)
    )
    walls = cv2.merge([cv2.convertScaleAbs(tone, alpha=float(c)) for c in wall])
    walls[(height_at < 0.09) & (surface >= 2)] = skirting.astype(np.uint8)
    del u, v, direction, nearest, tone, height_at

    ppm = float(np.clip(width / 3.5, 40.0, 420.0))
    texture = _floor_texture(rng, ppm)
    to_floor = np.array([[1.0 / ppm, 0.0, x0], [0.0, 1.0 / ppm, y0], [0.0, 0.0, 1.0]])
    homography = camera.K @ np.column_stack([camera.R[:, 0], camera.R[:, 1], camera.t]) @ to_floor
    floor = cv2.warpPerspective(
        texture, homography, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    alpha = cv2.GaussianBlur((surface == 0).astype(np.float32), (0, 0), 0.6)
    image = cv2.blendLinear(floor, walls, alpha, 1.0 - alpha)
    image.flags.writeable = False
    return image


def _shadows(image: np.ndarray, camera: Camera, solids: list[Solid]) -> None:
    """Darken the floor under the given solids (soft contact shadows from the light above)."""
    height, width = image.shape[:2]
    factor = max(1, int(np.ceil(width / 640)))
    small = Camera(
        camera.view,
        camera.K * np.array([[1 / factor], [1 / factor], [1.0]]),
        camera.R,
        camera.t,
        width // factor,
        height // factor,
    )
    mask = np.zeros((height // factor, width // factor), np.uint8)
    for solid in solids:
        flat = solid.centres.copy()
        flat[:, 2] = 0.0
        uv = small.project(flat)
        r_px = small.K[0, 0] * solid.radii * 1.15 / np.maximum(small.to_camera(flat)[:, 2], 1e-3)
        pts = (uv[:, None, :] + r_px[:, None, None] * _circle(float(r_px.max()))).reshape(-1, 2)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts * 16).astype(np.int32)), 255, cv2.LINE_AA, 4)
    sigma = 0.05 * small.K[0, 0] / float(np.linalg.norm(camera.centre - TARGET))
    mask = cv2.GaussianBlur(mask, (0, 0), max(sigma, 0.5))
    mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_LINEAR)
    darken = 1.0 - 0.45 * mask.astype(np.float32) / 255.0
    image[:] = (image * darken[..., None]).astype(np.uint8)


# ---------------------------------------------------------------------------- frames


def scene_background(spec: VideoSpec, take: Take, camera: Camera) -> np.ndarray:
    """The room with contact shadows and the static manikin: what every frame starts from."""
    image = room(spec.seed, spec.participant, spec.view_index, spec.view, spec.width, spec.height).copy()
    person = take.person
    first = rescuer_solids(_points(take.poses, person.scale)[0], person, take.poses.hands)
    grounded = [
        solid for solid, (_, _, material) in zip(first, _BODY, strict=True) if material in ("trousers", "shoes")
    ]
    parts = [Solid(c, r, colour) for c, r, colour in manikin.static_parts()]
    _shadows(image, camera, parts + grounded)
    draw_solids(image, camera, parts, sort=False)
    return image


def render_frames(
    spec: VideoSpec, take: Take | None = None, *, rescuer: bool = True, noise: bool = True
) -> Iterator[np.ndarray]:
    """The video's BGR frames. rescuer=False leaves the rescuer out (an empty scene for checks);
    noise=False leaves the sensor noise out. The yielded buffer is reused: copy to keep it."""
    take = take or simulate(spec)
    camera = make_camera(spec.view_index, spec.view, spec.width, spec.height)
    background = scene_background(spec, take, camera)
    points = _points(take.poses, take.person.scale)
    frame = np.empty_like(background)
    out = np.empty_like(background)
    grain = np.empty((spec.height, spec.width * 3), np.int16)
    seeds = spec.noise_seeds()
    for i in range(spec.frames):
        np.copyto(frame, background)
        draw_solids(frame, camera, [Solid(*manikin.chest_dome(float(take.signal.depth[i])))])
        if rescuer:
            draw_solids(frame, camera, rescuer_solids(points[i], take.person, take.poses.hands))
        if noise and spec.noise > 0:
            cv2.setRNGSeed(int(seeds[i]))
            cv2.randn(grain, 0.0, spec.noise)
            cv2.add(frame, grain.reshape(frame.shape), dst=out, dtype=cv2.CV_8U)
            yield out
        else:
            yield frame
