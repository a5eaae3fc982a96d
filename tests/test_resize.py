"""The resize stage: sizes, frame counts, resampling, and clear errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from cprcoach.errors import ConfigError, CprCoachError, VideoError
from cprcoach.flow.cli import main as flow_main
from cprcoach.flow.extract import extract_flow
from cprcoach.flow.params import FlowSettings
from cprcoach.video.contact_sheet import middle_frame
from cprcoach.video.ffmpeg import ffmpeg_exe
from cprcoach.video.frames import read_frames
from cprcoach.video.probe import clip_beside
from cprcoach.video.resize import ClipSpec, VideoSettings, resize_video


def decoded_frames(path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


SIZES = {"rgb": {"width": 96, "height": 64}, "pose": {"width": 160, "height": 84}}


def clips_in(folder):
    return [ClipSpec("rgb", 96, 64, folder / "clip.rgb.mp4"), ClipSpec("pose", 160, 84, folder / "clip.pose.mp4")]


def resize(source, folder, **kwargs):
    settings = VideoSettings.from_config({"source": {"width": 160, "height": 84, "fps": 25}, "clips": SIZES, **kwargs})
    return resize_video(source, clips_in(folder), folder / "clip.probe.json", settings, threads=1)


def leftovers(folder):
    return sorted(p.name for p in folder.glob("*") if p.is_file())


def test_one_pass_writes_every_clip(video_factory, tmp_path):
    source = video_factory(frames=50)
    out = tmp_path / "out"
    sidecar = resize(source, out)
    assert leftovers(out) == ["clip.pose.mp4", "clip.probe.json", "clip.rgb.mp4"]
    for clip in clips_in(out):
        with av.open(str(clip.path)) as container:
            stream = container.streams.video[0]
            assert (stream.codec_context.name, stream.codec_context.width, stream.codec_context.height) == (
                "h264",
                clip.width,
                clip.height,
            )
            assert stream.average_rate == 25
        assert abs(decoded_frames(clip.path) - 50) <= 1
    written = json.loads((out / "clip.probe.json").read_text())
    assert written == sidecar
    assert written["source"] | {"path": None, "size_bytes": None, "bit_rate": None} == {
        "path": None,
        "size_bytes": None,
        "bit_rate": None,
        "codec": "h264",
        "width": 160,
        "height": 84,
        "fps": 25.0,
        "frames": 50,
        "duration": 2.0,
        "pix_fmt": "yuv420p",
        "has_audio": False,
        "rotation": 0,
    }
    assert written["resampled"] is False and written["warnings"] == []
    assert {name: clip["frames"] for name, clip in written["clips"].items()} == {"rgb": 50, "pose": 50}


def test_other_frame_rates_are_resampled_with_a_warning(video_factory, tmp_path, caplog):
    source = video_factory(fps=30, frames=60)
    sidecar = resize(source, tmp_path / "out")
    assert sidecar["resampled"] is True
    assert "recorded at 30.000 fps, resampled to 25 fps" in sidecar["warnings"][0]
    assert "resampled to 25 fps" in caplog.text
    assert abs(decoded_frames(tmp_path / "out" / "clip.rgb.mp4") - 50) <= 1


def test_audio_is_dropped(video_factory, tmp_path):
    sidecar = resize(video_factory(audio=True), tmp_path / "out")
    assert sidecar["source"]["has_audio"] is True
    with av.open(str(tmp_path / "out" / "clip.rgb.mp4")) as container:
        assert not container.streams.audio


def test_wrong_size_is_an_error_that_names_the_fix(video_factory, tmp_path):
    source = video_factory(width=192, height=108)
    with pytest.raises(VideoError) as error:
        resize(source, tmp_path / "out")
    assert str(source) in str(error.value)
    assert "video is 192x108, but video.source says 160x84" in str(error.value)
    assert "set video.source to {width: 192, height: 108}" in str(error.value)
    assert leftovers(tmp_path / "out") == []


def rotated(source: Path, degrees: int) -> Path:
    """A copy of `source` whose container says to turn the picture, as phones write it."""
    out = source.with_name(f"{source.stem}.rot{degrees}.mp4")
    command = [ffmpeg_exe(), "-y", "-loglevel", "error", "-display_rotation", str(degrees), "-i", str(source)]
    subprocess.run([*command, "-c", "copy", str(out)], check=True)
    return out


def first_frame(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24").astype(float)


def test_a_rotated_recording_is_turned_as_players_turn_it(video_factory, tmp_path):
    source = video_factory(frames=10)
    upright = resize(source, tmp_path / "upright")
    turned = resize(rotated(source, 180), tmp_path / "turned")
    assert (upright["source"]["rotation"], turned["source"]["rotation"]) == (0, 180)
    clip, turned_clip = (
        first_frame(tmp_path / "upright" / "clip.pose.mp4"),
        first_frame(tmp_path / "turned" / "clip.pose.mp4"),
    )
    assert np.abs(turned_clip - clip[::-1, ::-1]).mean() < 3 < np.abs(turned_clip - clip).mean()


def test_a_recording_turned_to_portrait_is_the_wrong_size(video_factory, tmp_path):
    portrait = rotated(video_factory(frames=10), 90)  # coded 160x84, as the config says, but shown 84x160
    with pytest.raises(VideoError) as error:
        resize(portrait, tmp_path / "out")
    text = str(error.value)
    assert "video is 84x160 as displayed (its container rotates the picture by 90 degrees)" in text
    assert "but video.source says 160x84" in text and "re-export this one upright" in text
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda f, p: p.write_bytes(b""), "empty (0 bytes)"),
        (lambda f, p: p.write_bytes(b"\x00not a video" * 300), "cannot read the video"),
        (lambda f, p: f("tone.mp4", video=False, audio=True).rename(p), "no video stream"),
        (
            lambda f, p: p.write_bytes(f("whole.mp4", frames=50, faststart=False).read_bytes()[:6000]),
            "cannot read the video",
        ),
        (lambda f, p: p.write_bytes(f("whole.mp4", frames=50).read_bytes()[:-20000]), "the file is truncated"),
    ],
    ids=["zero-byte", "garbage", "audio-only", "truncated-no-index", "truncated-frames"],
)
def test_bad_input_is_named_and_leaves_nothing(video_factory, tmp_path, make, message):
    source = tmp_path / "bad.mp4"
    make(video_factory, source)
    with pytest.raises(VideoError) as error:
        resize(source, tmp_path / "out")
    assert message in str(error.value)
    assert str(error.value).startswith(str(source)) and "fix:" in str(error.value)
    assert leftovers(tmp_path / "out") == []


def test_cli_reports_errors_without_a_traceback(tmp_path):
    source = tmp_path / "empty.mp4"
    source.write_bytes(b"")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cprcoach.video",
            "resize",
            str(source),
            "--probe",
            str(tmp_path / "o.probe.json"),
            "--settings",
            json.dumps({"source": {"width": 160, "height": 84, "fps": 25}, "clips": SIZES}),
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith(f"cprcoach: error: {source}: video file is empty")
    assert "Traceback" not in result.stderr


def test_clip_sizes_must_be_even_and_clips_go_beside_the_probe():
    clips = {"rgb": {"width": 340, "height": 256}}
    settings = VideoSettings.from_config({"source": {"width": 640, "height": 480, "fps": 25}, "clips": clips})
    assert [(c.name, c.width, c.height) for c in settings.clips_beside("a/E00_01.probe.json")] == [("rgb", 340, 256)]
    with pytest.raises(ConfigError, match="video.clips.rgb.width: 341 is not a multiple of 2"):
        VideoSettings.from_config(
            {"source": {"width": 640, "height": 480, "fps": 25}, "clips": {"rgb": {"width": 341, "height": 256}}}
        )
    assert clip_beside(Path("a/b/E04+E07_01.probe.json"), "rgb") == Path("a/b/E04+E07_01.rgb.mp4")
    with pytest.raises(CprCoachError, match="NAME.probe.json"):
        clip_beside(Path("a/b.json"), "rgb")


def test_cli_resizes_every_view_of_a_recording(video_factory, tmp_path):
    sources = [video_factory(f"{view}.mp4", frames=10) for view in ("V1", "V2")]
    probes = [tmp_path / "out" / view / "E00_01.probe.json" for view in ("V1", "V2")]
    command = [sys.executable, "-m", "cprcoach.video", "resize", *map(str, sources)]
    video = {
        "source": {"width": 160, "height": 84, "fps": 25},
        "clips": {"rgb": {"width": 64, "height": 48}, "pose": {"width": 96, "height": 50}},
    }
    options = ["--settings", json.dumps(video), "--threads", "1"]
    subprocess.run([*command, "--probe", *map(str, probes), *options], check=True, capture_output=True)
    for source, probe in zip(sources, probes, strict=True):
        sidecar = json.loads(probe.read_text())
        assert sidecar["source"]["path"] == str(source)
        assert {name: (c["width"], c["height"], c["frames"]) for name, c in sidecar["clips"].items()} == {
            "rgb": (64, 48, 10),
            "pose": (96, 50, 10),
        }
        assert probe.with_name("E00_01.rgb.mp4").stat().st_size > 0
    result = subprocess.run([*command, "--probe", str(probes[0]), *options], capture_output=True, text=True)
    assert result.returncode == 2 and "2 sources but 1 --probe paths" in result.stderr


def test_a_clip_truncated_after_the_resize_stage_stops_every_stage_that_reads_it(video_factory, tmp_path, capsys):
    resize(video_factory(frames=50), tmp_path / "out")
    clip = tmp_path / "out" / "clip.rgb.mp4"
    shorter = tmp_path / "shorter.mp4"
    command = [ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(clip), "-frames:v", "28", "-c:v", "libx264"]
    subprocess.run([*command, str(shorter)], check=True)
    shorter.replace(clip)  # a valid file, but 28 of the 50 frames the probe records
    expected = f"the clip holds 28 frames, but the resize stage wrote 50 ({tmp_path / 'out' / 'clip.probe.json'})"
    for read in (
        lambda: read_frames(clip),
        lambda: middle_frame(clip),
        lambda: extract_flow(clip, tmp_path / "flow.npz", FlowSettings.from_config({"backend": "opencv"}), threads=1),
    ):
        with pytest.raises(VideoError) as error:
            read()
        assert str(error.value).startswith(f"{clip}: {expected}")
        assert "delete it; snakemake then resizes its recording again" in str(error.value)
    assert not (tmp_path / "flow.npz").exists()
    with pytest.raises(SystemExit):
        flow_main(["extract", str(clip), "--out", str(tmp_path / "flow.npz"), "--threads", "1"])
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    clip.write_bytes(clip.read_bytes()[:3000])  # cut mid-file: the container no longer opens
    with pytest.raises(VideoError, match="cannot decode the clip"):
        middle_frame(clip)
