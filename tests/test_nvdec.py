"""The GPU decoder's resize pass (video.decoder: nvdec), its arithmetic checked on the CPU.

Everything but the NVDEC decode itself runs here: NV12 frames from PyAV (the layout NVDEC writes)
go through the same batching, frame selection, turning, area scaling and x264 encoders, and the
clips must match the CPU decoder's to at least 40 dB PSNR.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import av
import cv2
import numpy as np
import pytest
import torch

from conftest import REPO
from cprcoach.atomic import partial_path
from cprcoach.config import validate_config
from cprcoach.errors import ConfigError, CprCoachError, VideoError
from cprcoach.synth.dataset import correct_recording, render_video
from cprcoach.video.area import area_resize, area_weights
from cprcoach.video.nvdec import as_nv12, check_decodable, encode_clips, load_pynvvideocodec, resampled_indices
from cprcoach.video.probe import probe_video
from cprcoach.video.resize import ClipSpec, VideoSettings, expected_frames, resize_video, x264_options
from test_resize import rotated

SOURCE = {"width": 512, "height": 270, "fps": 25}
SIZES = {"rgb": {"width": 112, "height": 84}, "pose": {"width": 256, "height": 136}}


def settings(**video) -> VideoSettings:
    return VideoSettings.from_config({"source": SOURCE, "clips": SIZES, **video})


def clips_in(folder) -> list[ClipSpec]:
    return settings().clips_beside(folder / "clip.probe.json")


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A synthetic CPR recording: a rescuer and a manikin, as the cameras see them."""
    path = tmp_path_factory.mktemp("source") / "P01_V1_correct_1.mp4"
    return render_video(correct_recording(path, SOURCE["width"], SOURCE["height"], 1.2))


def pyav_nv12_batches(path, batch: int):
    """The recording's frames as NV12 batches, as the GPU decoder hands them over (on the CPU here)."""
    with av.open(str(path)) as container:
        frames = [torch.from_numpy(f.to_ndarray(format="nv12")) for f in container.decode(video=0)]
    for start in range(0, len(frames), batch):
        yield torch.stack(frames[start : start + batch])


def gpu_arithmetic(source, folder, batch: int = 8) -> list[ClipSpec]:
    """The nvdec pass on `source` with PyAV in NVDEC's place; returns the clips it wrote."""
    clips = clips_in(folder)
    folder.mkdir(parents=True, exist_ok=True)
    info = probe_video(source)
    fps = SOURCE["fps"]
    options = x264_options(settings().encoder, fps, 1)
    encode_clips(pyav_nv12_batches(source, batch), info, clips, fps, expected_frames(info, fps), options)
    for clip in clips:
        partial_path(clip.path).replace(clip.path)
    return clips


def rgb_frames(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * np.log10(255**2 / np.mean((a - b) ** 2))


def test_area_weights_cover_each_output_pixel_once_and_match_opencv():
    weights = area_weights(4096, 340)
    assert weights.shape == (340, 4096)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights.sum(axis=0).sum(), 340)
    plane = np.random.default_rng(0).integers(0, 256, (2160, 4096), dtype=np.uint8)
    for height, width in [(256, 340), (540, 1024), (2160, 4096)]:
        ours = area_resize(torch.from_numpy(plane)[None], height, width)[0].numpy().astype(int)
        theirs = cv2.resize(plane, (width, height), interpolation=cv2.INTER_AREA).astype(int)
        assert np.abs(ours - theirs).max() <= 1  # float rounding only
    flat = torch.full((2, 270, 512), 77, dtype=torch.uint8)
    assert torch.equal(area_resize(flat, 84, 112), torch.full((2, 84, 112), 77, dtype=torch.uint8))


def test_decoded_surfaces_are_read_as_the_pictures_nv12():
    picture = torch.arange(6 * 4, dtype=torch.uint8).reshape(6, 4)  # 4x4 luma, then 2 rows of chroma
    assert torch.equal(as_nv12(picture, 4, 4), picture)
    assert torch.equal(as_nv12(picture.flatten(), 4, 4), picture)
    padded = torch.zeros(12, 4, dtype=torch.uint8)  # coded 8 rows: 8 of luma, 4 of chroma
    padded[:4], padded[8:10] = picture[:4], picture[4:]
    assert torch.equal(as_nv12(padded, 4, 4), picture)
    with pytest.raises(CprCoachError, match=r"a frame of shape \(5, 3\), not NV12 \(6, 4\)"):
        as_nv12(torch.zeros(5, 3, dtype=torch.uint8), 4, 4)


def test_the_gpu_decoder_takes_limited_range_4_2_0_only(recording):
    info = probe_video(recording)
    check_decodable(info)
    for other in ("yuvj420p", "yuv422p", "yuv420p10le"):
        with pytest.raises(VideoError, match=f"its pictures are {other}, but the GPU decoder handles 8-bit 4:2:0"):
            check_decodable(dataclasses.replace(info, pix_fmt=other))


def test_frames_are_picked_nearest_in_time():
    assert resampled_indices(10, 25, 25, 10).tolist() == list(range(10))
    assert resampled_indices(12, 30, 25, 10).tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 10, 11]
    assert resampled_indices(5, 20, 25, 6).tolist() == [0, 1, 2, 2, 3, 4]  # a frame shown twice
    assert resampled_indices(3, 25, 25, 5).tolist() == [0, 1, 2, 2, 2]  # never past the last


@pytest.mark.parametrize("batch", [8, 64])
def test_gpu_arithmetic_matches_the_cpu_decoder(recording, tmp_path, batch):
    cpu = resize_video(
        recording, clips_in(tmp_path / "cpu"), tmp_path / "cpu" / "clip.probe.json", settings(), threads=1
    )
    assert cpu["decoder"] == {"name": "ffmpeg"}
    for clip in gpu_arithmetic(recording, tmp_path / "gpu", batch):
        theirs, ours = rgb_frames(cpu["clips"][clip.name]["path"]), rgb_frames(clip.path)
        assert ours.shape == theirs.shape == (cpu["clips"][clip.name]["frames"], clip.height, clip.width, 3)
        assert psnr(ours, theirs) >= 40, clip.name


@pytest.mark.parametrize("degrees", [90, 180, 270])
def test_gpu_arithmetic_turns_a_rotated_recording_as_the_cpu_decoder_does(recording, tmp_path, degrees):
    turned = rotated(recording, degrees)
    wide = degrees % 180 == 0
    source = SOURCE if wide else {**SOURCE, "width": SOURCE["height"], "height": SOURCE["width"]}
    sizes = SIZES if wide else {name: {"width": s["height"], "height": s["width"]} for name, s in SIZES.items()}
    video = VideoSettings.from_config({"source": source, "clips": sizes})
    cpu_clips = video.clips_beside(tmp_path / "cpu" / "clip.probe.json")
    resize_video(turned, cpu_clips, tmp_path / "cpu" / "clip.probe.json", video, threads=1)
    gpu_clips = video.clips_beside(tmp_path / "gpu" / "clip.probe.json")
    (tmp_path / "gpu").mkdir()
    info = probe_video(turned)
    options = x264_options(video.encoder, 25, 1)
    encode_clips(pyav_nv12_batches(turned, 8), info, gpu_clips, 25, expected_frames(info, 25), options)
    for theirs, ours in zip(cpu_clips, gpu_clips, strict=True):
        assert psnr(rgb_frames(partial_path(ours.path)), rgb_frames(theirs.path)) >= 40, (degrees, ours.name)


def test_nvdec_scales_with_the_area_filter_only():
    config = yaml_config(video={"decoder": "nvdec", "encoder": {"scale_flags": "bicubic"}})
    with pytest.raises(ConfigError, match="video.encoder.scale_flags: the GPU decoder"):
        validate_config(config)
    validate_config(yaml_config(video={"decoder": "nvdec"}))


def yaml_config(video: dict) -> dict:
    import yaml

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["video"] = {
        **config["video"],
        **video,
        "encoder": {**config["video"]["encoder"], **video.get("encoder", {})},
    }
    return config


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_nvdec_is_a_clear_error_naming_the_key(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("CPRCOACH_GPU_LOCKS", str(tmp_path / "locks"))
    with pytest.raises(CprCoachError, match=r"a CUDA device was asked for \(video.decoder\)") as error:
        resize_video(recording, clips_in(tmp_path), tmp_path / "clip.probe.json", settings(decoder="nvdec"), threads=1)
    assert "set video.decoder to cpu" in error.value.fix
    assert list(tmp_path.glob("clip.*")) == []
    run = subprocess.run(
        [sys.executable, "-m", "cprcoach.video", "resize", str(recording), "--probe", str(tmp_path / "x.probe.json")]
        + [
            "--settings",
            '{"source": {"width": 512, "height": 270, "fps": 25}, "clips": {"rgb": {"width": 112, "height": 84}}, "decoder": "nvdec"}',
        ]
        + ["--threads", "1"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO / "tools"), "CPRCOACH_GPU_LOCKS": str(tmp_path / "locks")},
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr
    assert "video.decoder" in run.stderr


def test_a_machine_without_the_driver_is_told_what_pynvvideocodec_needs():
    try:
        load_pynvvideocodec()
    except CprCoachError as error:
        assert error.message.startswith("video.decoder is nvdec, but PyNvVideoCodec cannot be loaded")
        assert "\n" not in error.message and "set video.decoder: cpu" in error.fix
    else:
        pytest.skip("PyNvVideoCodec loads here: this machine has the NVIDIA driver")
