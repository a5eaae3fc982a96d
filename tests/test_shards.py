"""The shard stage on real synthetic data: build, layout, round trips, check, index, Datasets, exports, stats."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import FAST_FLOW, RGB, SOURCE, preprocess_recording, read_video, tiny_config
from cprcoach.bench.shards import run_bench
from cprcoach.errors import CprCoachError
from cprcoach.flow.extract import extract_flow
from cprcoach.flow.format import read_flow
from cprcoach.flow.quantize import quantize
from cprcoach.pose.format import read_pose
from cprcoach.samples import read_sheet, samples_from_config, write_sheet
from cprcoach.shards import store
from cprcoach.shards.build import shard_videos
from cprcoach.shards.check import check_shard
from cprcoach.shards.datasets import FlowDataset, RGBDataset, SkeletonDataset, segment_starts
from cprcoach.shards.export import export_rawframes, export_skeletons
from cprcoach.shards.index import INDEX_COLUMNS, build_index, read_index, write_index
from cprcoach.shards.stats import dataset_stats, human_bytes
from cprcoach.shards.store import build_shard, open_shard
from cprcoach.synth.dataset import generate_dataset
from cprcoach.video.frames import read_frames

FRAMES = 25
KINDS = ("rgb", "flow", "pose", "probe")
SHARDS = [sys.executable, "-m", "cprcoach.shards"]


@pytest.fixture(scope="module")
def processed(tmp_path_factory) -> dict:
    """1 participant x 2 views x (E00, E05+E08), 1 s each, through resize, flow and pose."""
    root = tmp_path_factory.mktemp("processed")
    config = tiny_config(root, seed=3, singles=["E00"], composites=["E04+E07"])
    generate_dataset(config)
    sheet = samples_from_config(config)
    write_sheet(sheet, root / "samples.tsv")
    files: dict[str, dict[str, Path]] = {}
    for row in sheet.itertuples():
        stem = f"{row.participant}/{row.view}/{row.label}_{row.take}"
        clips = root / "results" / "clips"
        paths = {
            "rgb": clips / f"{stem}.rgb.mp4",
            "pose_clip": clips / f"{stem}.pose.mp4",
            "probe": clips / f"{stem}.probe.json",
            "flow": root / "results" / "flow" / f"{stem}.npz",
            "pose": root / "results" / "pose" / f"{stem}.npz",
        }
        preprocess_recording(Path(row.path), paths)
        files[row.video_id] = paths
    return {"root": root, "sheet": read_sheet(root / "samples.tsv"), "files": files}


def files_of(processed: dict, participant: str, view: str) -> dict[str, list[Path]]:
    sheet = processed["sheet"]
    ids = sheet[(sheet.participant == participant) & (sheet.view == view)]["video_id"]
    return {kind: [processed["files"][v][kind] for v in ids] for kind in KINDS}


@pytest.fixture(scope="module")
def built(processed) -> dict:
    """Both shards and their index, built with the functions."""
    folder = processed["root"] / "results" / "shards"
    shards = [
        build_shard(
            shard_videos(processed["sheet"], "P01", view, files_of(processed, "P01", view)), folder / f"P01_{view}.h5"
        )
        for view in ("V1", "V2")
    ]
    write_index(build_index(shards, processed["root"] / "samples.tsv"), folder / "index.tsv")
    return {"shards": shards, "index": folder / "index.tsv", "table": read_index(folder / "index.tsv")}


# ------------------------------------------------------------------------------------ the shard


def test_layout_and_attributes(processed, built):
    path = built["shards"][0]
    assert path.name == "P01_V1.h5" and not list(path.parent.glob(".*partial*"))
    with open_shard(path) as shard:
        assert shard.attrs["format"] == store.FORMAT
        assert (shard.attrs["participant"], shard.attrs["view"]) == ("P01", "V1")
        assert list(shard) == list(shard.attrs["videos"]) == ["P01_V1_E00_01", "P01_V1_E04+E07_01"]  # sheet order
        assert json.loads(shard.attrs["layout"])["rgb"] == {"codec": "jpeg", "quality": 90, "colour": "RGB"}
        assert json.loads(shard.attrs["versions"])["hdf5plugin"]
        group = shard["P01_V1_E04+E07_01"]
        assert group["rgb"].shape == (FRAMES,) and group["rgb"].dtype == h5py.vlen_dtype(np.uint8)
        assert group["flow_x"].shape == group["flow_y"].shape == (FRAMES - 1, RGB[1], RGB[0])
        assert group["flow_x"].dtype == np.uint8 and group["flow_x"].chunks == (1, RGB[1], RGB[0])
        assert group["keypoints"].shape == (FRAMES, 26, 3) and group["keypoints"].dtype == np.float32
        assert group["box"].shape == (FRAMES, 4) and group["found"].dtype == bool
        attrs = store.group_attrs(group)
    raw = Path(processed["sheet"].set_index("video_id").loc["P01_V1_E04+E07_01", "path"])
    assert {k: attrs[k] for k in ("label", "multi_hot", "label_index", "kind", "n_errors", "split")} == {
        "label": "E04+E07",
        "multi_hot": "00001001000000",
        "label_index": 4,
        "kind": "composite",
        "n_errors": 2,
        "split": "test",
    }
    assert (attrs["participant"], attrs["view"], attrs["take"]) == ("P01", "V1", "01")
    assert (attrs["fps"], attrs["frames"], attrs["flow_frames"]) == (25.0, FRAMES, FRAMES - 1)
    assert (attrs["width"], attrs["height"], attrs["source_width"], attrs["source_height"]) == (*RGB, *SOURCE)
    assert attrs["source_size"] == raw.stat().st_size
    assert attrs["source_sha256"] == hashlib.sha256(raw.read_bytes()).hexdigest()
    assert (attrs["flow_backend"], attrs["pose_backend"], attrs["flow_bound"]) == ("opencv", "groundtruth", 20.0)
    assert json.loads(attrs["flow_meta"])["tvl1"]["nscales"] == 2
    assert json.loads(attrs["probe_meta"])["encoder"]["codec"] == "libx264"
    assert set(store.REQUIRED_ATTRS) <= set(attrs)


def test_round_trip(processed, built):
    paths = processed["files"]["P01_V2_E00_01"]
    with open_shard(built["shards"][1]) as shard:
        video = read_video(shard, "P01_V2_E00_01")
    frames = read_frames(paths["rgb"])
    assert video.rgb.shape == frames.shape and video.rgb.dtype == np.uint8
    error = np.abs(video.rgb.astype(int) - frames)
    assert error.mean() < 3.0 and np.percentile(error, 99) < 25  # JPEG at quality 90
    x, y, _ = read_flow(paths["flow"])
    np.testing.assert_array_equal(video.flow_x, x)  # flow is stored losslessly
    np.testing.assert_array_equal(video.flow_y, y)
    pose = read_pose(paths["pose"])
    np.testing.assert_array_equal(video.pose.keypoints, pose.keypoints)
    np.testing.assert_array_equal(video.pose.box, pose.box)
    np.testing.assert_array_equal(video.pose.found, pose.found)
    np.testing.assert_array_equal(video.pose.interpolated, pose.interpolated)
    assert video.pose.meta == pose.meta


def test_failed_build_leaves_no_shard(processed, tmp_path, monkeypatch):
    videos = shard_videos(processed["sheet"], "P01", "V1", files_of(processed, "P01", "V1"))
    calls = []

    def failing(path, *args):
        calls.append(path)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return read_frames(path, *args)

    monkeypatch.setattr(store, "read_frames", failing)
    out = tmp_path / "P01_V1.h5"
    with pytest.raises(RuntimeError, match="disk full"):
        build_shard(videos, out)
    assert len(calls) == 2 and list(tmp_path.iterdir()) == []


def test_files_out_of_sheet_order_are_refused(processed, tmp_path):
    files = files_of(processed, "P01", "V1")
    swapped = {**files, "rgb": files["rgb"][::-1]}
    with pytest.raises(CprCoachError, match="not clips of this recording's probe: rgb clip"):
        build_shard(shard_videos(processed["sheet"], "P01", "V1", swapped), tmp_path / "a.h5")
    swapped = {**files, "probe": files["probe"][::-1], "rgb": files["rgb"][::-1]}
    with pytest.raises(CprCoachError, match="the probe is of"):
        build_shard(shard_videos(processed["sheet"], "P01", "V1", swapped), tmp_path / "a.h5")
    with pytest.raises(CprCoachError, match="2 videos in the sheet, but got 1 --flow"):
        shard_videos(processed["sheet"], "P01", "V1", {**files, "flow": files["flow"][:1]})
    with pytest.raises(CprCoachError, match="no videos of participant P09"):
        shard_videos(processed["sheet"], "P09", "V1", files)
    assert list(tmp_path.iterdir()) == []


def test_float_flow_is_kept(processed, tmp_path):
    files = files_of(processed, "P01", "V2")
    floats = [tmp_path / f"{i}.npz" for i in range(2)]
    for clip, out in zip(files["rgb"], floats, strict=True):
        extract_flow(clip, out, dataclasses.replace(FAST_FLOW, output="float16"), threads=1)
    shard = build_shard(
        shard_videos(processed["sheet"], "P01", "V2", {**files, "flow": floats}), tmp_path / "P01_V2.h5"
    )
    index = build_index([shard])
    with open_shard(shard) as handle:
        video = read_video(handle, "P01_V2_E00_01")
    x, _, _ = read_flow(floats[0])
    assert video.flow_x.dtype == np.float16 and index["flow_dtype"].tolist() == ["float16"] * 2
    np.testing.assert_array_equal(video.flow_x, x)
    stack, _ = FlowDataset(index, num_segments=1, length=1, as_float=True)[0]
    assert stack.dtype == torch.float32 and stack.shape == (1, 2, RGB[1], RGB[0])
    export_rawframes(index.iloc[:1], tmp_path / "frames")
    image = cv2.imread(str(tmp_path / "frames" / "P01_V2_E00_01" / "flow_x_00001.jpg"), cv2.IMREAD_GRAYSCALE)
    assert image.dtype == np.uint8 and np.abs(image.astype(int) - quantize(x[0].astype(np.float32), 20)).mean() < 1.0


def test_open_shard_refuses_other_files(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle.attrs["format"] = "something else"
    with pytest.raises(CprCoachError, match="not a cprcoach-shard/3 file"):
        open_shard(tmp_path / "other.h5")
    with pytest.raises(CprCoachError, match="cannot open the shard"):
        open_shard(tmp_path / "missing.h5")


# ---------------------------------------------------------------------------- CLI, check, index


def test_cli_build_index_check(processed, built, tmp_path):
    sheet = processed["root"] / "samples.tsv"
    shards = []
    for view in ("V1", "V2"):
        files = files_of(processed, "P01", view)
        shards.append(tmp_path / f"P01_{view}.h5")
        args = ["build", "--samples", sheet, "--participant", "P01", "--view", view, "--out", shards[-1]]
        for kind in KINDS:
            args += [f"--{kind}", *files[kind]]
        subprocess.run([*SHARDS, *map(str, args)], check=True)
    index = tmp_path / "index.tsv"
    subprocess.run([*SHARDS, "index", *map(str, shards), "--samples", str(sheet), "--out", str(index)], check=True)
    report = tmp_path / "check.json"
    checked = [*SHARDS, "check", *map(str, shards), "--index", str(index), "--checksums", "--out", str(report)]
    subprocess.run(checked, check=True)
    results = json.loads(report.read_text())["shards"]
    assert [(r["videos"], r["checksums"], r["problems"]) for r in results] == [(2, 2, []), (2, 2, [])]
    assert pd.read_csv(index, sep="\t")["shard"].tolist() == ["P01_V1.h5", "P01_V2.h5"] * 2
    # Same content as the shards built by the functions (the creation time aside).
    with open_shard(shards[0]) as a, open_shard(built["shards"][0]) as b:
        assert store.group_attrs(a["P01_V1_E00_01"]).keys() == store.group_attrs(b["P01_V1_E00_01"]).keys()
        np.testing.assert_array_equal(a["P01_V1_E00_01/flow_x"][:], b["P01_V1_E00_01/flow_x"][:])
    failed = subprocess.run(
        [*SHARDS, "check", str(shards[0]), "--index", str(tmp_path / "none.tsv")], capture_output=True, text=True
    )
    assert failed.returncode == 2 and "cannot read the index" in failed.stderr and "Traceback" not in failed.stderr


def test_check_names_the_problems_of_a_tampered_shard(built, tmp_path):
    assert check_shard(built["shards"][0], built["table"], checksums=True).problems == []
    tampered = tmp_path / "P01_V1.h5"
    shutil.copy(built["shards"][0], tampered)
    with h5py.File(tampered, "r+") as shard:
        group = shard["P01_V1_E00_01"]
        keypoints = group["keypoints"][:-1]
        del group["keypoints"]
        group.create_dataset("keypoints", data=keypoints)
        shard["P01_V1_E04+E07_01"].attrs["frames"] = 99
        shard["P01_V1_E04+E07_01"].attrs["flow_path"] = str(tmp_path / "gone.npz")
    index = built["table"].assign(
        shard=[str(tampered) if s.endswith("P01_V1.h5") else s for s in built["table"]["shard"]]
    )
    index.loc[index["video_id"] == "P01_V1_E00_01", "label"] = "E04"
    problems = check_shard(tampered, index).problems
    assert any("P01_V1_E00_01: keypoints is (24, 26, 3), expected (25, 26, 3)" in p for p in problems)
    assert any("P01_V1_E04+E07_01: attributes say 99 frames" in p for p in problems)
    assert any("P01_V1_E00_01: label is 'E00' in the shard, 'E04' in the index" in p for p in problems)
    assert any("P01_V1_E04+E07_01: frames is 99 in the shard, 25 in the index" in p for p in problems)
    assert len(problems) == 4
    assert check_shard(tampered, index).skipped == [f"P01_V1_E04+E07_01: flow file {tmp_path / 'gone.npz'} is gone"]
    missing = check_shard(tampered, index[index["video_id"] != "P01_V1_E00_01"]).problems
    assert "in the shard, not in the index: P01_V1_E00_01" in missing


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)[0]
        handle.seek(offset)
        handle.write(bytes([byte ^ 0x5A]))


def chunk_middle(path: Path, dataset: str) -> int:
    """The file offset of the middle of a dataset's first chunk."""
    with h5py.File(path, "r") as shard:
        info = shard[dataset].id.get_chunk_info(0)
    return info.byte_offset + info.size // 2


def jpeg_middle(path: Path, video: str, frame: int) -> int:
    """The file offset of the middle of one stored JPEG (HDF5 keeps variable-length data in a heap)."""
    with h5py.File(path, "r") as shard:
        blob = shard[f"{video}/rgb"][frame].tobytes()
    data = path.read_bytes()
    assert data.count(blob) == 1
    return data.index(blob) + len(blob) // 2


@pytest.mark.parametrize(
    ("dataset", "locate", "read"),
    [
        ("flow_x", lambda p: chunk_middle(p, "P01_V1_E00_01/flow_x"), lambda g: store.take(g["flow_x"], [0, 1])),
        ("keypoints", lambda p: chunk_middle(p, "P01_V1_E00_01/keypoints"), lambda g: store.read_array(g, "keypoints")),
        ("rgb", lambda p: jpeg_middle(p, "P01_V1_E00_01", 3), lambda g: store.read_rgb(g, range(5))),
    ],
    ids=["flow-chunk", "keypoints-chunk", "one-jpeg"],
)
def test_flipped_bytes_are_caught_by_the_check_and_the_readers(built, tmp_path, dataset, locate, read):
    damaged = tmp_path / "P01_V1.h5"
    shutil.copy(built["shards"][0], damaged)
    flip_byte(damaged, locate(damaged))
    index = built["table"].assign(
        shard=[str(damaged) if s.endswith("P01_V1.h5") else s for s in built["table"]["shard"]]
    )
    result = check_shard(damaged, index, checksums=True)
    assert len(result.problems) == 1 and result.checksums == 1  # the other video verifies
    assert result.problems[0].startswith(f"P01_V1_E00_01: video P01_V1_E00_01, dataset {dataset}: ")
    assert check_shard(built["shards"][0], built["table"], checksums=True).problems == []
    with open_shard(damaged) as shard, pytest.raises(store.DamagedShardError) as error:
        read(shard["P01_V1_E00_01"])
    text = str(error.value)
    assert text.startswith(f"{damaged}: video P01_V1_E00_01, dataset {dataset}: ") and "the shard is damaged" in text
    assert "delete the shard and rerun snakemake" in text


def test_index_from_shards(processed, built, tmp_path):
    table = built["table"]
    assert list(table.columns) == INDEX_COLUMNS
    assert table["video_id"].tolist() == processed["sheet"]["video_id"].tolist()  # sheet order
    assert table["multi_hot"].tolist() == ["10000000000000"] * 2 + ["00001001000000"] * 2
    assert table["label_index"].tolist() == [0, 0, 4, 4] and table["take"].tolist() == ["01"] * 4
    assert table["split"].tolist() == ["train", "train", "test", "test"]
    assert table["frames"].tolist() == [FRAMES] * 4 and table["flow_frames"].tolist() == [FRAMES - 1] * 4
    assert [Path(s) for s in table["shard"]] == [built["shards"][i] for i in (0, 1, 0, 1)]
    # Without the sheet: the shards' own order and split; with it, the sheet's split wins.
    own = build_index(built["shards"])
    assert own["video_id"].tolist() == ["P01_V1_E00_01", "P01_V1_E04+E07_01", "P01_V2_E00_01", "P01_V2_E04+E07_01"]
    sheet = processed["sheet"].assign(split=["test", "train", "test", "test"])
    write_sheet(sheet, tmp_path / "samples.tsv")
    assert build_index(built["shards"], tmp_path / "samples.tsv")["split"].tolist() == sheet["split"].tolist()
    with pytest.raises(CprCoachError, match="not in any shard: P01_V2_E00_01, P01_V2_E04"):
        build_index(built["shards"][:1], processed["root"] / "samples.tsv")
    with pytest.raises(CprCoachError, match="videos in more than one shard"):
        build_index([built["shards"][0], built["shards"][0]])


# ----------------------------------------------------------------------------------- Datasets


def test_segment_sampling():
    assert segment_starts(100, 4, 1, train=False).tolist() == [12, 37, 62, 87]
    assert segment_starts(24, 3, 5, train=False).tolist() == [3, 10, 16]
    starts = segment_starts(100, 4, 1, train=True)
    assert all(25 * i <= s < 25 * (i + 1) for i, s in enumerate(starts))
    assert segment_starts(3, 5, 1, train=False).tolist() == [0, 0, 1, 2, 2]  # short videos repeat frames
    assert segment_starts(3, 2, 5, train=True).tolist() == [0, 0]


@pytest.mark.parametrize(
    ("dataset", "options", "shape", "dtype"),
    [
        (SkeletonDataset, {"clip_len": 16}, (3, 16, 26), torch.float32),
        (RGBDataset, {"num_segments": 3}, (3, 3, RGB[1], RGB[0]), torch.uint8),
        (RGBDataset, {"num_segments": 2, "length": 2, "as_float": True}, (4, 3, RGB[1], RGB[0]), torch.float32),
        (FlowDataset, {"num_segments": 3, "length": 4}, (3, 8, RGB[1], RGB[0]), torch.uint8),
    ],
)
def test_datasets_with_two_workers(built, dataset, options, shape, dtype):
    data = dataset(built["index"], "train", **options)
    data[0]  # a handle opened in the parent must not leak into the workers
    assert len(data) == 2 and data.train
    batches = list(DataLoader(data, batch_size=2, num_workers=2))
    assert len(batches) == 1
    clip, label = batches[0]
    assert clip.shape == (2, *shape) and clip.dtype == dtype
    assert label.tolist() == [0, 0] and label.dtype == torch.int64
    test = dataset(built["index"], "test", target="multi_hot", **options)
    (first, target), (again, _) = test[0], test[0]
    torch.testing.assert_close(first, again)  # centre sampling outside training
    assert target.dtype == torch.float32 and target.tolist() == [float(c) for c in "00001001000000"]


def test_dataset_values(processed, built):
    pose = read_pose(processed["files"]["P01_V1_E00_01"]["pose"])
    raw = SkeletonDataset(built["index"], "train", clip_len=FRAMES, train=False)
    sequence, _ = raw[0]
    np.testing.assert_allclose(sequence.numpy(), pose.keypoints.transpose(2, 0, 1))  # every frame, in order
    image, _ = SkeletonDataset(built["index"], "train", clip_len=8, normalize="image")[0]
    assert image[:2].abs().max() <= 1.0 and image[2].max() <= 1.0
    body, _ = SkeletonDataset(built["index"], "train", clip_len=FRAMES, normalize="body", train=False)[0]
    assert body[:2, :, 19].mean(dim=1).abs().max() < 1e-4  # centred on the hip joint
    looped, _ = SkeletonDataset(built["index"], "train", clip_len=2 * FRAMES, sampling="crop", train=False)[0]
    torch.testing.assert_close(looped[:, :FRAMES], looped[:, FRAMES:])
    x, _, _ = read_flow(processed["files"]["P01_V1_E00_01"]["flow"])
    stack, _ = FlowDataset(built["index"], "train", num_segments=1, length=2, train=False)[0]
    start = segment_starts(FRAMES - 1, 1, 2, train=False)[0]
    np.testing.assert_array_equal(stack[0, 0].numpy(), x[start])  # x1, y1, x2, y2
    np.testing.assert_array_equal(stack[0, 2].numpy(), x[start + 1])
    pixels, _ = FlowDataset(built["index"], "train", num_segments=1, length=2, train=False, as_float=True)[0]
    assert pixels.dtype == torch.float32 and pixels.abs().max() <= 20.0
    opened = RGBDataset(built["index"], "train", train=False)
    first, _ = opened[0]
    copy = pickle.loads(pickle.dumps(opened))  # what a spawned worker gets: no open handle
    assert copy._files == {} and torch.equal(copy[0][0], first)
    with pytest.raises(CprCoachError, match="the index has no val videos"):
        RGBDataset(built["index"], "val")
    with pytest.raises(CprCoachError, match="normalize one of"):
        SkeletonDataset(built["index"], normalize="screen")


# ------------------------------------------------------------------------------- exports, stats


def test_pyskl_skeleton_pickle(built, tmp_path):
    out = tmp_path / "cprcoach_2d.pkl"
    export_skeletons(built["table"], out)
    data = pickle.loads(out.read_bytes())
    assert set(data) == {"split", "annotations"}
    assert data["split"] == {
        "train": ["P01_V1_E00_01", "P01_V2_E00_01"],
        "test": ["P01_V1_E04+E07_01", "P01_V2_E04+E07_01"],
    }
    assert [a["frame_dir"] for a in data["annotations"]] == built["table"]["video_id"].tolist()
    for annotation in data["annotations"]:
        assert {
            "frame_dir",
            "label",
            "img_shape",
            "original_shape",
            "total_frames",
            "keypoint",
            "keypoint_score",
        } <= set(annotation)
        assert annotation["img_shape"] == annotation["original_shape"] == (SOURCE[1], SOURCE[0])
        assert annotation["total_frames"] == FRAMES and isinstance(annotation["label"], int)
        assert annotation["keypoint"].shape == (1, FRAMES, 26, 2) and annotation["keypoint"].dtype == np.float32
        assert (
            annotation["keypoint_score"].shape == (1, FRAMES, 26) and annotation["keypoint_score"].dtype == np.float32
        )
    by_cli = tmp_path / "cli.pkl"
    subprocess.run([*SHARDS, "export-skeleton", "--index", str(built["index"]), "--out", str(by_cli)], check=True)
    again = pickle.loads(by_cli.read_bytes())
    assert again["split"] == data["split"]
    np.testing.assert_array_equal(again["annotations"][3]["keypoint"], data["annotations"][3]["keypoint"])
    composite = data["annotations"][2]
    assert composite["label"] == 4 and composite["label_code"] == "E04+E07"
    assert composite["multi_hot"].tolist() == [0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]


def test_rawframes_layout(built, tmp_path):
    out = tmp_path / "rawframes"
    folders = export_rawframes(built["table"], out)
    assert [f.name for f in folders] == built["table"]["video_id"].tolist()
    folder = out / "P01_V1_E04+E07_01"
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted(
        [f"img_{i:05d}.jpg" for i in range(1, FRAMES + 1)]
        + [f"flow_{a}_{i:05d}.jpg" for a in "xy" for i in range(1, FRAMES)]
    )
    with open_shard(built["shards"][0]) as shard:
        group = shard["P01_V1_E04+E07_01"]
        assert (folder / "img_00001.jpg").read_bytes() == group["rgb"][0].tobytes()
        flow_y = group["flow_y"][FRAMES - 2]
    image = cv2.imread(str(folder / f"flow_y_{FRAMES - 1:05d}.jpg"), cv2.IMREAD_GRAYSCALE)
    assert image.shape == flow_y.shape and np.abs(image.astype(int) - flow_y).mean() < 1.0
    lists = {p.name: p.read_text().splitlines() for p in out.glob("*.txt")}
    assert lists["cprcoach_train_list_rawframes.txt"] == [f"P01_V1_E00_01 {FRAMES} 0", f"P01_V2_E00_01 {FRAMES} 0"]
    assert lists["cprcoach_test_list_rawframes_flow.txt"][0] == f"P01_V1_E04+E07_01 {FRAMES - 1} 4"
    assert lists["cprcoach_test_list_rawframes_multilabel.txt"][1] == f"P01_V2_E04+E07_01 {FRAMES} 4 7"
    assert len(lists) == 6 and not list(out.glob(".*partial*"))
    by_cli = tmp_path / "cli"
    subprocess.run([*SHARDS, "export-rawframes", "--index", str(built["index"]), "--out", str(by_cli)], check=True)
    assert sorted(p.relative_to(by_cli) for p in by_cli.rglob("*")) == sorted(
        p.relative_to(out) for p in out.rglob("*")
    )


def test_stats_table(processed, built, tmp_path):
    table = dataset_stats(built["table"])
    values = dict(zip(table["item"], table["value"], strict=True))
    raw = sum(Path(p).stat().st_size for p in processed["sheet"]["path"])
    assert values == {
        "Perspectives": "2",
        "FPS": "25",
        "Video Resolution": f"{SOURCE[0]}x{SOURCE[1]}",
        "Number of Participants": "1",
        "Classes of Single-class Actions": "1+0=1",
        "Classes of Composite Error Actions": "1+0+0=1",
        "Frames (RGB)": f"{4 * FRAMES}",
        "Frames (RGB+Flow)": f"{4 * FRAMES + 2 * 4 * (FRAMES - 1)}",
        "Videos": "4",
        "Avg. Len. of Videos": "1.00s",
        "Storage Size (raw videos)": human_bytes(raw),
        "Storage Size (shards)": human_bytes(sum(s.stat().st_size for s in built["shards"])),
    }
    assert table.loc[table["item"] == "Frames (RGB)", "cpr_coach"].item() == "2,217,756"
    assert [human_bytes(n) for n in (999, 1000, 12_345, 449e9)] == ["999B", "1.00KB", "12.3KB", "449GB"]
    out = tmp_path / "stats.tsv"
    subprocess.run([*SHARDS, "stats", "--index", str(built["index"]), "--out", str(out)], check=True)
    assert pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False).equals(table)


def test_bench_tables(built, tmp_path):
    throughput, storage = run_bench(
        built["table"], tmp_path, videos=2, clips=4, num_segments=2, flow_length=2, clip_len=8
    )
    assert throughput[["modality", "source"]].values.tolist() == [
        ["skeleton", "shards"],
        ["rgb segments", "shards"],
        ["rgb segments", "jpeg files"],
        ["flow stacks", "shards"],
        ["flow stacks", "jpeg files"],
    ]
    assert (throughput["clips_per_s"] > 0).all()
    rgb = storage[storage["unit"] == "rgb frame"]["bytes"].tolist()
    assert rgb[0] == pytest.approx(rgb[1])  # the exported JPEGs are the shard's
