"""The TSN backbones on a tiny real shard: shapes, the input functions against the eval-mode Datasets,
training that learns and repeats with a seed, feature extraction in index order; and assessing a
raw recording through the workflow's preprocessing, against what the workflow made of it."""

from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import RGB, preprocess_recording, read_video, tiny_config
from cprcoach.errors import CprCoachError
from cprcoach.model.assess import assess_recording
from cprcoach.model.backbone import run_skeleton_backbone, run_video_backbone
from cprcoach.model.checkpoints import load_features
from cprcoach.model.data import (
    bundle_from_index,
    flow_clip_input,
    flow_input,
    rgb_clip_input,
    rgb_input,
    tsn_batches,
    tsn_dataset,
    tsn_inputs,
)
from cprcoach.model.networks.tsn import TSN, TSNConfig
from cprcoach.model.settings import ModelSettings, VideoSettings
from cprcoach.model.train import extract, fit
from cprcoach.samples import read_sheet, samples_from_config, write_sheet
from cprcoach.settings import from_section
from cprcoach.shards.build import shard_videos
from cprcoach.shards.datasets import FlowDataset, RGBDataset
from cprcoach.shards.index import build_index, read_index, write_index
from cprcoach.shards.store import build_shard, open_shard
from cprcoach.synth.dataset import generate_dataset

VIEWS = ("V1", "V2")
SUFFIXES = {"rgb": "rgb.mp4", "pose_clip": "pose.mp4", "probe": "probe.json", "flow": "flow.npz", "pose": "pose.npz"}
TINY = {"channels": [8, 16], "segments": 3, "dropout": 0.0}
CPU = torch.device("cpu")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tsn_config(root: Path) -> dict:
    """The tiny dataset's configuration: what the index fixture and an assessment preprocess with."""
    return tiny_config(root, seed=5, singles=["E00", "E05"], composites=[])


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> pd.DataFrame:
    """1 participant x 2 views x (E00, E05), 1 s each, through resize, flow and pose into 2 shards."""
    root = tmp_path_factory.mktemp("tsn")
    config = tsn_config(root)
    generate_dataset(config)
    write_sheet(samples_from_config(config), root / "samples.tsv")
    sheet = read_sheet(root / "samples.tsv")
    files: dict[str, dict[str, Path]] = {}
    for row in sheet.itertuples():
        stem = f"{root}/results/{row.participant}/{row.view}/{row.label}_{row.take}"
        paths = {kind: Path(f"{stem}.{suffix}") for kind, suffix in SUFFIXES.items()}
        preprocess_recording(Path(row.path), paths, config["pose"])
        files[row.video_id] = paths
    shards = []
    for view in VIEWS:
        ids = sheet.loc[sheet["view"] == view, "video_id"]
        lists = {kind: [files[v][kind] for v in ids] for kind in ("rgb", "flow", "pose", "probe")}
        shards.append(build_shard(shard_videos(sheet, "P01", view, lists), root / "shards" / f"P01_{view}.h5"))
    write_index(build_index(shards, root / "samples.tsv"), root / "shards" / "index.tsv")
    return read_index(root / "shards" / "index.tsv")


def network(modality: str, **video) -> TSNConfig:
    """The network of model.video with the keys of `video` changed."""
    return TSNConfig.from_settings(from_section(VideoSettings, "model.video", video), modality, num_classes=14)


def tiny(modality: str, **video) -> TSN:
    torch.manual_seed(0)
    return TSN(network(modality, **(TINY | video)))


def train(model: TSN, rows: pd.DataFrame, seed: int, **video) -> list[dict]:
    """`model` trained on the rows with model.video's training settings, the keys of `video` changed."""
    settings = from_section(VideoSettings, "model.video", video)
    return fit(model, tsn_batches(model.config, rows, settings.batch_size, settings.workers, seed, CPU), settings, CPU)


# --- the network and its input -----------------------------------------------------------------------


def test_config_defaults():
    video = from_section(VideoSettings, "model.video")
    assert (video.length("rgb"), video.length("flow")) == (1, 5)
    rgb, flow = network("rgb"), network("flow", flow_length=3)
    assert (rgb.length, rgb.in_channels, flow.in_channels) == (1, 3, 6)
    assert TSNConfig(**asdict(network("flow"))) == network("flow")
    with pytest.raises(ValueError, match="modality"):
        replace(rgb, modality="depth")


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_shapes(modality):
    model = tiny(modality).eval()
    x = torch.randn(2, 3, model.config.in_channels, RGB[1], RGB[0])
    pooled, tokens, logits = model.features(x)
    assert pooled.shape == (2, 16) and tokens.shape == (2, 3, 16) and logits.shape == (2, 14)
    assert model.feature_dim == 16
    torch.testing.assert_close(pooled, tokens.mean(dim=1))
    torch.testing.assert_close(model(x), logits)  # consensus: fc of the mean = mean of the segment scores
    torch.testing.assert_close(logits, model.fc(tokens).mean(dim=1))
    torch.testing.assert_close(model.tokens(x[:, :1]), tokens[:, :1])  # each segment on its own


def test_input_normalisation():
    white = torch.full((4, 3, 2, 2), 255, dtype=torch.uint8)
    x = rgb_input(white, length=2)
    assert x.shape == (2, 6, 2, 2) and x.dtype == torch.float32
    white_standardised = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[1, :, 1, 1], white_standardised.repeat(2))  # frames stacked on the channels
    quantised = torch.tensor([0, 255, 128], dtype=torch.uint8)
    torch.testing.assert_close(flow_input(quantised), torch.tensor([-1.0, 1.0, 1 / 255]))
    pixels = torch.tensor([-30.0, 10.0, 0.0], dtype=torch.float16)
    torch.testing.assert_close(flow_input(pixels, bound=20.0), torch.tensor([-1.0, 0.5, 0.0]))
    with pytest.raises(ValueError, match="bound"):
        flow_input(pixels)


# --- on the shard ------------------------------------------------------------------------------------


def whole_video(record) -> SimpleNamespace:
    with open_shard(record.shard) as shard:
        return read_video(shard, record.group)


@pytest.mark.parametrize(("segments", "length"), [(8, 1), (3, 2)])
def test_rgb_clip_input_is_the_eval_dataset_item(index, segments, length):
    config = network("rgb", segments=segments, rgb_length=length)
    fed = tsn_dataset(config, index, train=False)
    raw = RGBDataset(index, num_segments=segments, length=length, train=False)
    for i, record in enumerate(index.itertuples()):
        clip = rgb_clip_input(whole_video(record).rgb, segments, length)
        assert clip.shape == (segments, 3 * length, RGB[1], RGB[0])
        torch.testing.assert_close(clip, fed[i][0], rtol=0, atol=0)
        torch.testing.assert_close(clip, rgb_input(raw[i][0], length), rtol=0, atol=0)
        assert fed[i][1] == record.label_index


@pytest.mark.parametrize(("segments", "length"), [(8, 5), (3, 2)])
def test_flow_clip_input_is_the_eval_dataset_item(index, segments, length):
    config = network("flow", segments=segments, flow_length=length)
    fed = tsn_dataset(config, index, train=False)
    pixels = FlowDataset(index, num_segments=segments, length=length, train=False, as_float=True)
    for i, record in enumerate(index.itertuples()):
        video = whole_video(record)
        clip = flow_clip_input(video.flow_x, video.flow_y, segments, length)
        assert clip.shape == (segments, 2 * length, RGB[1], RGB[0])
        torch.testing.assert_close(clip, fed[i][0], rtol=0, atol=0)
        # In units of the bound: the dequantised pixels divided by it.
        torch.testing.assert_close(clip, pixels[i][0] / record.flow_bound)


def test_training_draws_random_snippets(index):
    config = network("rgb", segments=3)
    torch.manual_seed(0)
    fed = tsn_dataset(config, index, train=True)
    assert not all(torch.equal(fed[0][0], fed[0][0]) for _ in range(5))


def test_tsn_training_learns_and_repeats(index):
    rows = index.assign(label_index=[VIEWS.index(v) for v in index["view"]])  # separable: the camera
    # One batch of all four: with fewer, batch norm sees one view alone and the loss jumps about.
    settings = {"epochs": 15, "batch_size": 4, "lr": 1e-2}
    runs = []
    for _ in range(2):
        model = tiny("rgb")
        runs.append((train(model, rows, seed=3, **settings), model.state_dict()))
        assert not model.training
    (history, weights), (again, weights_again) = runs
    assert [r["epoch"] for r in history] == list(range(1, 16))
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert [r["accuracy"] for r in history[-3:]] == [1.0, 1.0, 1.0]
    assert [(r["loss"], r["accuracy"]) for r in history] == [(r["loss"], r["accuracy"]) for r in again]
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)
    other = tiny("rgb")
    train(other, rows, seed=4, epochs=1, batch_size=2)
    first = tiny("rgb")
    train(first, rows, seed=3, epochs=1, batch_size=2)
    assert not torch.equal(other.fc.weight, first.fc.weight)


def test_tsn_training_with_a_worker_and_dropout_repeats(index):
    # Batches of 3 and 1 in a shuffled order; the snippets drawn in the worker process.
    runs = []
    for _ in range(2):
        model = tiny("flow", dropout=0.5)
        runs.append((train(model, index, seed=1, epochs=2, batch_size=3, workers=1), model.state_dict()))
    (history, weights), (again, weights_again) = runs
    assert [r["loss"] for r in history] == [r["loss"] for r in again]
    assert all(torch.equal(weights[k], weights_again[k]) for k in weights)


def test_tsn_extraction_in_index_order(index):
    model = tiny("flow")
    rows = index.iloc[::-1]
    pooled, tokens, logits = extract(model, tsn_inputs(model.config, rows, batch_size=3, workers=0), CPU)
    assert pooled.shape == (4, 16) and tokens.shape == (4, 3, 16) and logits.shape == (4, 14)
    assert pooled.dtype == tokens.dtype == logits.dtype == np.float32
    with torch.no_grad():
        for i, record in enumerate(rows.itertuples()):
            video = whole_video(record)
            one = model.features(flow_clip_input(video.flow_x, video.flow_y, 3, model.config.length)[None])
            for got, want in zip((pooled, tokens, logits), one, strict=True):
                np.testing.assert_allclose(got[i], want[0].numpy(), rtol=1e-4, atol=1e-5)


def test_rows_the_backbone_refuses(index):
    composite = index.assign(multi_hot=["00000100100000", *index["multi_hot"][1:]])
    with pytest.raises(CprCoachError, match="single-class"):
        train(tiny("rgb"), composite, seed=0, epochs=1)
    with pytest.raises(CprCoachError, match="frame size"):
        tsn_dataset(network("rgb"), index.assign(height=[72, 72, 72, 84]), train=True)
    with pytest.raises(CprCoachError, match="flow bound"):
        tsn_dataset(network("flow"), index.assign(flow_bound=[20.0, 20.0, 20.0, 10.0]), train=True)
    with pytest.raises(CprCoachError, match="no videos"):
        tsn_dataset(network("rgb"), index.iloc[:0], train=False)


# --- assessment of a raw recording -------------------------------------------------------------------


def test_assess_a_raw_recording_as_the_workflow_preprocessed_it(index, tmp_path):
    """Skeleton and flow reach the backbone exactly as the workflow stored them in the shards (pose and
    flow are stored losslessly), so the scores equal the features file's; RGB differs only by the
    shards' JPEG."""
    root = Path(index["shard"].iloc[0]).parents[1]
    config = tsn_config(root)
    row = int(np.flatnonzero(index["video_id"] == "P01_V2_E05_01")[0])
    raw = root / "raw" / "P01" / "V2" / "E05_01.mp4"
    bundle = bundle_from_index(root / "shards" / "index.tsv", frames=16)
    skeleton = {"epochs": 1, "channels": [8], "strides": [1]}
    settings = ModelSettings.from_config({"skeleton": skeleton, "video": {"epochs": 1, "batch_size": 4, **TINY}})
    run_skeleton_backbone(bundle, tmp_path / "s.pt", tmp_path / "s.npz", settings, 0, CPU)
    for modality in ("rgb", "flow"):
        run_video_backbone(modality, index, tmp_path / f"{modality}.pt", tmp_path / f"{modality}.npz", settings, 0, CPU)
    for modality, tolerance in (("skeleton", 1e-4), ("flow", 1e-4), ("rgb", 0.02)):
        checkpoint = tmp_path / ("s.pt" if modality == "skeleton" else f"{modality}.pt")
        features = load_features(checkpoint.with_suffix(".npz"))
        result = assess_recording(raw, checkpoint, config=config, threshold=0.5)
        got = np.array([c["probability"] for c in result["classes"]])
        want = torch.softmax(torch.from_numpy(features.logits[row]), dim=0).numpy()
        assert result["modality"] == modality and result["method"] == "backbone softmax"
        np.testing.assert_allclose(got, want, atol=tolerance)
    with pytest.raises(CprCoachError, match="reads a flow"):
        rgb_clip = root / "results" / "P01" / "V2" / "E05_01.rgb.mp4"
        assess_recording(rgb_clip, tmp_path / "flow.pt", prepared=True, threshold=0.5)
