"""TV-L1 flow: our batched PyTorch solver against OpenCV's and against known flow.

Pairs are real photographs (scikit-image's astronaut, coffee, chelsea, camera) at 96x128, the
first frame sampled from the second at p + flow(p) for a known flow: smooth random fields,
translations and small rotations. End-point errors are measured away from the border, where
content enters and leaves the frame.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import yaml
from skimage import color, data

from cprcoach.bench import flow as benchmark
from cprcoach.bench.flow import smooth_flow, synthetic_clip
from cprcoach.config import schema_path
from cprcoach.errors import ConfigError, CprCoachError
from cprcoach.flow import tvl1
from cprcoach.flow.launch import FUSED_MAX_BATCH
from cprcoach.flow.median import median_filter
from cprcoach.flow.opencv import create_tvl1, flow_opencv
from cprcoach.flow.quantize import quantize
from cprcoach.flow.tvl1 import TVL1Params, auto_batch_size, flow_torch, tvl1_torch

HEIGHT, WIDTH = 96, 128
MARGIN = 8  # pixels left out of the end-point error
SOURCE_MARGIN = 16  # pixels of photograph around the frame, so warping never reaches its border
IMAGES = ("astronaut", "coffee", "chelsea", "camera")
# The largest mean end-point error allowed per kind of motion, about 1.5x what both solvers reach
# (smooth 0.10-0.26 px, translation 0.008-0.015 px, rotation 0.02-0.08 px).
BOUNDS = {"smooth": 0.4, "translation": 0.03, "rotation": 0.12}
RATIO, SLACK = 1.10, 0.005  # torch EPE <= RATIO x OpenCV EPE + SLACK (pixels, for errors near 0)
CLOSE_TO_OPENCV = 0.03  # pixels: mean end-point difference between the two solvers (measured <= 0.015)
TRANSLATIONS = ((1.6, -0.7), (-2.3, 1.2), (0.8, 2.5), (-1.4, -1.9))
ROTATIONS = (2.0, -3.0, 2.5, -1.5)  # degrees about the centre: up to 4 px at the corners
DEFAULTS = TVL1Params.from_config()


def photograph(name: str) -> np.ndarray:
    """A central crop of a scikit-image photograph in grey 0-255, with SOURCE_MARGIN around the frame."""
    image = getattr(data, name)()
    image = color.rgb2gray(image) * 255 if image.ndim == 3 else image.astype(np.float64)
    height, width = HEIGHT + 2 * SOURCE_MARGIN, WIDTH + 2 * SOURCE_MARGIN
    scale = 0.8 * min(image.shape[0] / height, image.shape[1] / width)
    crop_h, crop_w = int(height * scale), int(width * scale)
    top, left = (image.shape[0] - crop_h) // 2, (image.shape[1] - crop_w) // 2
    crop = image[top : top + crop_h, left : left + crop_w].astype(np.float32)
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


def grid() -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    return xs, ys


def translation(dx: float, dy: float) -> np.ndarray:
    return np.stack([np.full((HEIGHT, WIDTH), dx), np.full((HEIGHT, WIDTH), dy)], axis=-1).astype(np.float32)


def rotation(degrees: float) -> np.ndarray:
    xs, ys = grid()
    x, y = xs - (WIDTH - 1) / 2, ys - (HEIGHT - 1) / 2
    angle = np.deg2rad(degrees)
    flow = [np.cos(angle) * x - np.sin(angle) * y - x, np.sin(angle) * x + np.cos(angle) * y - y]
    return np.stack(flow, axis=-1).astype(np.float32)


def make_pair(source: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Frames (2, H, W) uint8 with frame0(p) = frame1(p + flow(p))."""
    xs, ys = grid()
    m = SOURCE_MARGIN
    frame0 = cv2.remap(source, xs + m + flow[..., 0], ys + m + flow[..., 1], cv2.INTER_CUBIC)
    frame1 = source[m : m + HEIGHT, m : m + WIDTH]
    return np.stack([frame0, frame1]).round().clip(0, 255).astype(np.uint8)


def epe(flow: np.ndarray, truth: np.ndarray) -> float:
    """Mean end-point error over the interior."""
    error = np.hypot(flow[..., 0] - truth[..., 0], flow[..., 1] - truth[..., 1])
    return float(error[..., MARGIN:-MARGIN, MARGIN:-MARGIN].mean())


def cases() -> list[tuple[str, str, np.ndarray]]:
    """(kind, image, true flow) of every accuracy case."""
    rng = np.random.default_rng(7)
    found = []
    for index, name in enumerate(IMAGES):
        found.append(("smooth", name, smooth_flow(rng, HEIGHT, WIDTH, 3.0)))
        found.append(("translation", name, translation(*TRANSLATIONS[index])))
        found.append(("rotation", name, rotation(ROTATIONS[index])))
    return found


CASES = cases()


@pytest.fixture(scope="module")
def solved() -> dict[torch.dtype, list[tuple[np.ndarray, np.ndarray]]]:
    """(OpenCV flow, torch flow) of every case, per dual dtype; torch solves all of them in one batch.

    float32 is the PyTorch solver's own; float16 is the fused kernels' (which the PyTorch solver
    takes too, so the CPU shows the GPU's accuracy).
    """
    torch.set_num_threads(2)
    sources = {name: photograph(name) for name in IMAGES}
    pairs = np.stack([make_pair(sources[name], truth) for _, name, truth in CASES])
    opencv = [flow_opencv(pair, DEFAULTS)[0] for pair in pairs]
    frames = torch.from_numpy(pairs).float()
    solved = {}
    for dual_dtype in (torch.float32, torch.float16):
        ours = tvl1_torch(frames[:, 0], frames[:, 1], DEFAULTS, dual_dtype=dual_dtype).permute(0, 2, 3, 1).numpy()
        solved[dual_dtype] = list(zip(opencv, ours, strict=True))
    return solved


@pytest.mark.parametrize("dual_dtype", [torch.float32, torch.float16], ids=["float32", "float16"])
@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{kind}-{name}" for kind, name, _ in CASES])
def test_torch_is_as_accurate_as_opencv(solved, index, dual_dtype):
    kind, _, truth = CASES[index]
    opencv, ours = solved[dual_dtype][index]
    opencv_epe, torch_epe = epe(opencv, truth), epe(ours, truth)
    assert opencv_epe < BOUNDS[kind]
    assert torch_epe < BOUNDS[kind]
    assert torch_epe <= RATIO * opencv_epe + SLACK, (torch_epe, opencv_epe)
    assert epe(ours, opencv) < CLOSE_TO_OPENCV


def test_identical_frames_have_no_flow():
    frame = make_pair(photograph("camera"), translation(0, 0))[1]
    clip = np.stack([frame, frame])
    assert np.abs(flow_opencv(clip, DEFAULTS)).max() < 1e-3
    assert np.abs(flow_torch(clip, DEFAULTS)).max() < 1e-3


@pytest.mark.parametrize("solve", [flow_opencv, flow_torch], ids=["opencv", "torch"])
@pytest.mark.parametrize("frames", [0, 1])
def test_a_clip_without_pairs_is_a_clear_error(solve, frames):
    with pytest.raises(CprCoachError, match="has no flow") as error:
        solve(np.zeros((frames, 32, 32), dtype=np.uint8), DEFAULTS)
    assert "check the clip" in error.value.fix


def test_batches_give_the_per_pair_flow_and_keep_the_last_partial_batch():
    clip, _ = synthetic_clip(7, 48, 64)  # 6 pairs: batches of 4 and 2
    one_by_one = flow_torch(clip, DEFAULTS, batch_size=1)
    batched = flow_torch(clip, DEFAULTS, batch_size=4)
    assert batched.shape == one_by_one.shape == (6, 48, 64, 2)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, one_by_one, atol=1e-3)
    np.testing.assert_allclose(flow_torch(clip, DEFAULTS, batch_size=100), one_by_one, atol=1e-3)


def test_flow_quantized_where_it_is_solved_is_the_stages_quantization():
    clip, _ = synthetic_clip(4, 48, 64)
    flow = flow_torch(clip, DEFAULTS, batch_size=2)
    quantized = flow_torch(clip, DEFAULTS, batch_size=2, bound=2.0)
    assert quantized.dtype == np.uint8 and quantized.shape == flow.shape
    np.testing.assert_array_equal(quantized, quantize(flow, 2.0))
    assert {0, 255} <= set(np.unique(quantized))  # the bound clips


def test_sparse_stopping_tests_stay_close_to_opencv(monkeypatch):
    """The GPU's schedule (a stopping test every few iterations), run on the CPU."""
    monkeypatch.setattr(tvl1, "CPU_CHECK_INTERVAL", tvl1.GPU_CHECK_INTERVAL)
    clip, truth = synthetic_clip(3, HEIGHT, WIDTH)
    ours, opencv = flow_torch(clip, DEFAULTS, batch_size=2), flow_opencv(clip, DEFAULTS)
    assert epe(ours, opencv) < CLOSE_TO_OPENCV
    assert epe(ours, truth) <= RATIO * epe(opencv, truth) + SLACK


@pytest.mark.parametrize("size", [(53, 77), (77, 53)], ids=["77x53", "53x77"])
def test_odd_sizes_match_opencv(size):
    clip, truth = synthetic_clip(3, *size)
    ours, opencv = flow_torch(clip, DEFAULTS), flow_opencv(clip, DEFAULTS)
    assert ours.shape == (2, *size, 2)
    assert np.isfinite(ours).all()
    assert epe(ours, opencv) < CLOSE_TO_OPENCV
    assert epe(ours, truth) <= RATIO * epe(opencv, truth) + SLACK


def test_gamma_matches_opencv():
    clip, _ = synthetic_clip(2, 64, 80)
    clip[1] = (clip[1].astype(np.float32) * 0.9 + 10).round().astype(np.uint8)  # a change of brightness
    params = TVL1Params.from_config({"gamma": 0.1})
    assert epe(flow_torch(clip, params), flow_opencv(clip, params)) < CLOSE_TO_OPENCV


@pytest.mark.parametrize("size", [5, 3])
def test_median_filter_is_opencvs(size):
    values = np.random.default_rng(0).normal(size=(2, 2, 37, 45)).astype(np.float32)
    values[:, :, ::3] = values[:, :, ::3].round()  # ties
    filtered = median_filter(torch.from_numpy(values), size).numpy()
    for pair, channel in np.ndindex(2, 2):
        np.testing.assert_array_equal(filtered[pair, channel], cv2.medianBlur(values[pair, channel], size))


def test_defaults_are_opencvs_and_the_schemas():
    solver = cv2.optflow.DualTVL1OpticalFlow_create()
    assert DEFAULTS.tau == solver.getTau()
    assert DEFAULTS.lambda_ == solver.getLambda()
    assert DEFAULTS.theta == solver.getTheta()
    assert DEFAULTS.nscales == solver.getScalesNumber()
    assert DEFAULTS.warps == solver.getWarpingsNumber()
    assert DEFAULTS.epsilon == solver.getEpsilon()
    assert DEFAULTS.inner_iterations == solver.getInnerIterations()
    assert DEFAULTS.outer_iterations == solver.getOuterIterations()
    assert DEFAULTS.scale_step == solver.getScaleStep()
    assert DEFAULTS.gamma == solver.getGamma()
    assert DEFAULTS.median_filtering == solver.getMedianFiltering()
    schema = yaml.safe_load(schema_path().read_text())
    properties = schema["properties"]["flow"]["properties"]["tvl1"]["properties"]
    assert TVL1Params.from_config({key: spec["default"] for key, spec in properties.items()}) == DEFAULTS


def test_params_from_config():
    params = TVL1Params.from_config({"lambda": 0.2, "inner_iterations": 7, "gamma": 0})
    assert (params.lambda_, params.inner_iterations, params.gamma) == (0.2, 7, 0.0)
    assert TVL1Params.from_config({}) == TVL1Params.from_config(None) == DEFAULTS
    solver = create_tvl1(params)
    assert (solver.getLambda(), solver.getInnerIterations()) == (0.2, 7)
    with pytest.raises(
        ConfigError, match=r"flow.tvl1: Additional properties are not allowed \('lamda' was unexpected\)"
    ):
        TVL1Params.from_config({"lamda": 0.2})
    with pytest.raises(ConfigError, match="odd window"):
        TVL1Params.from_config({"median_filtering": 4})
    with pytest.raises(ConfigError, match="not supported by OpenCV"):
        flow_opencv(np.zeros((2, 32, 32), dtype=np.uint8), TVL1Params.from_config({"median_filtering": 7}))


def test_auto_batch_size(monkeypatch):
    assert auto_batch_size(256, 340, "cpu", DEFAULTS) == 2
    assert auto_batch_size(96, 128, "cpu", DEFAULTS) > 2
    assert auto_batch_size(2160, 4096, "cpu", DEFAULTS) == 1
    free = 60 * 2**30
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, 80 * 2**30))
    fused_per_pair = tvl1.FUSED_BYTES_PER_PIXEL * 256 * 340
    assert auto_batch_size(256, 340, "cuda", DEFAULTS) == int(free * tvl1.CUDA_MEMORY_FRACTION / fused_per_pair)
    eager_per_pair = tvl1.BYTES_PER_PIXEL * 256 * 340
    eager = auto_batch_size(256, 340, "cuda", DEFAULTS, fused=False)
    assert eager == int(free * tvl1.CUDA_MEMORY_FRACTION / eager_per_pair)
    assert auto_batch_size(256, 340, "cuda", TVL1Params.from_config({"gamma": 0.1})) < auto_batch_size(
        256, 340, "cuda", DEFAULTS
    )
    assert auto_batch_size(16, 16, "cuda", DEFAULTS) == FUSED_MAX_BATCH  # a CUDA grid's height
    assert auto_batch_size(16, 16, "cuda", DEFAULTS, fused=False) > FUSED_MAX_BATCH


def test_benchmark_runs(capsys):
    benchmark.run(benchmark.build_parser().parse_args(["--size", "64x48", "--pairs", "2", "--cuda-pairs", "4"]))
    out = capsys.readouterr().out
    assert "pairs/s" in out
    assert "torch/opencv" in out
    assert "EPE" in out


def test_benchmark_without_cpu_pairs_needs_a_gpu(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit):
        benchmark.run(benchmark.build_parser().parse_args(["--size", "64x48", "--pairs", "0"]))
    err = capsys.readouterr().err
    assert "--pairs 0 skips the CPU comparison" in err
    assert "fix:" in err
