"""The model stage: skeleton normalisation, the ST-GCN graph, heads, the composite sampler, AP metrics,
training that learns and repeats with a seed, and the commands end to end on a toy dataset."""

from __future__ import annotations

import itertools
import json
import math
import re
import subprocess
import sys
from dataclasses import MISSING, fields

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from cprcoach.classes import load_classes
from cprcoach.config import schema_path
from cprcoach.errors import CprCoachError
from cprcoach.model.assess import assess_input
from cprcoach.model.checkpoints import load_checkpoint, load_features, load_head, load_scores
from cprcoach.model.cli import main
from cprcoach.model.data import (
    SkeletonBatches,
    SkeletonBundle,
    bundle_from_index,
    bundle_from_poses,
    normalise,
    resample,
)
from cprcoach.model.heads import CAHead, FCHead, SAHead, make_head, sinusoidal_positions
from cprcoach.model.imagine import CompositeSampler
from cprcoach.model.metrics import average_precision, class_aps, fuse, mmit_map, score_report, top1
from cprcoach.model.networks.stgcn import STGCN, STGCNConfig, spatial_partition
from cprcoach.model.registry import ASSESS_METHODS, FUSION_KINDS, FUSION_REGEX, HEAD_NAMES, MODALITIES
from cprcoach.model.settings import HeadSettings, SkeletonSettings, VideoSettings
from cprcoach.model.train import fit, fit_head, predict_head
from cprcoach.pose.format import PoseTrack, write_pose
from cprcoach.samples import COLUMNS, write_sheet
from cprcoach.settings import from_section
from cprcoach.skeleton import HALPE26, HALPE26_EDGES, JOINT

TABLE = load_classes()
C = TABLE.num_outputs
V = len(HALPE26)
TINY = STGCNConfig(num_classes=C, channels=[8, 16], strides=[1, 2], dropout=0.0)


# --- metrics ---------------------------------------------------------------------------------


def test_average_precision_hand_computed():
    # Ranked: +, -, +, - -> precision 1 at recall 1/2, 2/3 at recall 1: AP = 0.5 * 1 + 0.5 * 2/3.
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(5 / 6)
    assert average_precision([0, 1, 0, 1], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.5)
    assert average_precision([1, 1, 0], [0.3, 0.2, 0.1]) == 1.0
    # Tied scores are one threshold: both enter at once, precision 1/2.
    assert average_precision([1, 0], [0.5, 0.5]) == pytest.approx(0.5)
    assert average_precision([0, 1, 1], [0.5, 0.5, 0.1]) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))


def test_average_precision_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics", reason="scikit-learn is the reference for AP")
    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(2, 40))
        y = rng.random(n) < rng.uniform(0.1, 0.9)
        if not y.any():
            y[0] = True
        scores = rng.random(n)
        if trial % 2:  # many ties
            scores = np.round(scores, 1)
        assert average_precision(y, scores) == pytest.approx(metrics.average_precision_score(y, scores), abs=1e-12)


def test_map_mmit_top1_and_fusion():
    y = np.array([[0, 1, 1, 0], [0, 1, 0, 0], [0, 0, 1, 1]])
    s = np.array([[0.1, 0.9, 0.8, 0.2], [0.0, 0.4, 0.6, 0.3], [0.5, 0.2, 0.7, 0.1]])
    aps = class_aps(y, s)
    assert math.isnan(aps[0])  # no positive: skipped
    assert aps[1] == pytest.approx(1.0)
    assert aps[2] == pytest.approx(1.0)  # ranks 0.8, 0.7 first, then 0.6 (negative)
    assert aps[3] == pytest.approx(1 / 3)  # the positive (0.1) ranks last of three
    # Per video: 1.0; the positive ranked 2nd -> 0.5; positives ranked 1st and 4th -> (1 + 2/4) / 2.
    assert mmit_map(y, s) == pytest.approx((1.0 + 0.5 + 0.75) / 3)
    assert top1(np.eye(3), np.array([[0.9, 0, 0], [0.9, 0.1, 0], [0, 0.1, 0.2]])) == pytest.approx(2 / 3)
    views_y = np.array([[1, 0], [1, 0], [0, 1]])
    labels, fused, keys = fuse(views_y, np.array([[0.2, 0.4], [0.6, 0.0], [0.1, 0.9]]), ["a", "a", "b"])
    assert keys == ["a", "b"]
    np.testing.assert_allclose(fused, [[0.4, 0.2], [0.1, 0.9]])
    np.testing.assert_array_equal(labels, [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="different labels"):
        fuse(np.array([[1, 0], [0, 1]]), np.zeros((2, 2)), ["a", "a"])


def test_score_report_views_fused_and_skipped_classes():
    codes = ["E00", "E01", "E02"]
    multi_hot = np.array([[0, 1, 1]] * 2 + [[1, 0, 0]] * 2)
    scores = np.array([[0.1, 0.9, 0.2], [0.1, 0.3, 0.8], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    report = score_report(
        scores,
        multi_hot,
        views=["V1", "V2", "V1", "V2"],
        recordings=["c", "c", "s", "s"],
        composite=np.array([True, True, False, False]),
        heldout_single=np.array([False, False, True, True]),
        codes=codes,
    )
    composite = report["composite"]
    assert composite["videos"]["skipped_classes"] == ["E00"]
    assert composite["videos"]["per_class_AP"]["E00"] is None
    assert composite["videos"]["n_videos"] == 2 and composite["fused"]["n_videos"] == 1
    assert set(composite["views"]) == {"V1", "V2"}
    assert composite["fused"]["mmit_mAP"] == pytest.approx(1.0)  # fused: E01 0.6, E02 0.5, E00 0.1
    assert report["single_top1"]["videos"]["top1"] == pytest.approx(0.5)
    assert report["single_top1"]["fused"]["top1"] == pytest.approx(1.0)  # mean 0.5 vs 0.4
    json.dumps(report, allow_nan=False)


# --- data --------------------------------------------------------------------------------------


def skeleton(frames: int = 40, *, centre=(300.0, 200.0), size: float = 100.0, phase: float = 0.0) -> np.ndarray:
    """A moving skeleton in pixels: joints on a fixed random layout, bobbing up and down, score 0.9."""
    layout = np.random.default_rng(1).uniform(-0.5, 0.5, (V, 2))
    layout[JOINT["hip"]] = 0.0
    t = np.arange(frames)[:, None]
    xy = np.asarray(centre) + size * layout[None] + np.stack([0 * t, 0.05 * size * np.sin(t / 3 + phase)], -1)
    return np.concatenate([xy, np.full((frames, V, 1), 0.9)], axis=-1).astype(np.float32)


def test_normalise_is_position_and_scale_free():
    a = normalise(skeleton(), frames=32)
    b = normalise(skeleton(centre=(50.0, 900.0), size=250.0), frames=32)
    assert a.shape == (3, 32, V) and a.dtype == np.float32
    np.testing.assert_allclose(a[:2], b[:2], atol=1e-5)
    assert np.abs(np.median(a[:2, :, JOINT["hip"]], axis=1)).max() < 0.05
    assert np.abs(a[:2]).max() < 1.5  # about one person size
    np.testing.assert_allclose(a[2], 0.9)
    assert not normalise(np.zeros((10, V, 3)), frames=16).any()  # nobody seen: zeros, score 0


def test_resample_interpolates_linearly():
    track = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), dtype=np.float32)
    out = resample(track, 9)
    np.testing.assert_allclose(out[:, 0, 0], np.arange(9) / 2)
    assert resample(track[:1], 4).shape == (4, 2, 3)


def write_toy_dataset(root, participants=("P01", "P02", "P03"), views=("V1", "V2")) -> tuple:
    """Pose files and a sample sheet where error Ek shifts joint k down: learnable from the mean pose.

    P03 is held out; composites apply the shifts of each of their errors.
    """
    labels = ["E00", "E01", "E03", "E04", "E05", "E01+E04", "E03+E04", "E03+E05"]
    rows = []
    for participant, view, label in itertools.product(participants, views, labels):
        keypoints = skeleton(phase=len(rows) * 0.7)
        rng = np.random.default_rng(len(rows))
        keypoints[..., :2] += rng.normal(0, 1.0, keypoints[..., :2].shape)
        for code in TABLE.errors_of(label):
            if code != "E00":
                keypoints[:, int(code[1:]), 1] += 15.0
        path = root / "pose" / participant / view / f"{label}_01.npz"
        frames = len(keypoints)
        write_pose(path, PoseTrack(keypoints, np.zeros((frames, 4)), np.ones(frames, bool), np.zeros(frames, bool)))
        composite = TABLE.is_composite(label)
        rows.append(
            {
                "video_id": f"{participant}_{view}_{label}_01",
                "participant": participant,
                "view": view,
                "label": label,
                "take": "01",
                "kind": "composite" if composite else "single",
                "n_errors": sum(c != "E00" for c in TABLE.errors_of(label)),
                "multi_hot": TABLE.multi_hot_string(label),
                "split": "test" if composite or participant == "P03" else "train",
                "path": str(root / "raw" / participant / view / f"{label}_01.mp4"),
                "file_label": label,
            }
        )
    sheet = pd.DataFrame(rows, columns=COLUMNS)
    write_sheet(sheet, root / "samples.tsv")
    return sheet, str(root / "pose" / "{participant}" / "{view}" / "{label}_{take}.npz")


def test_bundle_from_poses(tmp_path):
    sheet, pattern = write_toy_dataset(tmp_path)
    bundle = bundle_from_poses(sheet, pattern, frames=16)
    assert bundle.x.shape == (len(sheet), 3, 16, V)
    assert bundle.multi_hot.shape == (len(sheet), C)
    assert list(bundle.video_id) == list(sheet["video_id"])
    assert bundle.is_single.sum() == (sheet["kind"] == "single").sum()
    train = bundle.subset(bundle.split == "train")
    assert len(train) == (sheet["split"] == "train").sum() and set(train.participant) == {"P01", "P02"}
    (tmp_path / "pose" / "P01" / "V1" / "E00_01.npz").unlink()
    with pytest.raises(CprCoachError, match="1 of .* pose files are missing"):
        bundle_from_poses(sheet, pattern, frames=16)
    with pytest.raises(CprCoachError, match="cannot be filled in"):
        bundle_from_poses(sheet, "{subject}.npz", frames=16)


def test_bundle_from_shard_index(tmp_path):
    from cprcoach.shards.index import INDEX_COLUMNS
    from cprcoach.shards.store import FORMAT

    keypoints = skeleton()
    with h5py.File(tmp_path / "P01_V1.h5", "w") as shard:
        shard.attrs["format"] = FORMAT
        shard.create_group("P01_V1_E05_01").create_dataset("keypoints", data=keypoints)
    row = dict.fromkeys(INDEX_COLUMNS, "0")
    row |= {"video_id": "P01_V1_E05_01", "shard": "P01_V1.h5", "group": "P01_V1_E05_01", "participant": "P01"}
    row |= {"view": "V1", "label": "E05", "take": "01", "multi_hot": TABLE.multi_hot_string("E05"), "split": "train"}
    pd.DataFrame([row], columns=INDEX_COLUMNS).to_csv(tmp_path / "index.tsv", sep="\t", index=False)
    bundle = bundle_from_index(tmp_path / "index.tsv", frames=20)
    np.testing.assert_allclose(bundle.x[0], normalise(keypoints, 20))
    assert bundle.class_index[0] == TABLE.index("E05") and bundle.take[0] == "01"


# --- network and heads ---------------------------------------------------------------------------


def test_spatial_partition():
    partition = spatial_partition(V, HALPE26_EDGES, JOINT["neck"])
    assert partition.shape == (3, V, V)
    np.testing.assert_allclose(partition.sum(axis=(0, 1)), 1.0, rtol=1e-6)  # each joint's inputs sum to 1
    assert (np.diagonal(partition[0]) > 0).all()  # a joint is in its own root set
    hip, neck, wrist, elbow = JOINT["hip"], JOINT["neck"], JOINT["left_wrist"], JOINT["left_elbow"]
    assert partition[1, neck, hip] > 0 and partition[2, hip, neck] > 0  # neck nearer the centre than hip
    assert partition[1, elbow, wrist] > 0 and partition[:, wrist, neck].sum() == 0  # not neighbours
    with pytest.raises(ValueError, match="connected"):
        spatial_partition(4, [(0, 1), (2, 3)], 0)


def test_stgcn_shapes():
    model = STGCN(STGCNConfig(num_classes=C, channels=[8, 16, 16], strides=[1, 2, 2], dropout=0.2)).eval()
    x = torch.randn(3, 3, 32, V)
    pooled, tokens, logits = model.features(x)
    assert pooled.shape == (3, 16) and tokens.shape == (3, 8, 16) and logits.shape == (3, C)
    torch.testing.assert_close(model(x), logits)
    torch.testing.assert_close(tokens.mean(dim=1), pooled)


@pytest.mark.parametrize(
    ("kind", "shape"),
    [("fc", (5, 2, 32)), ("sigmoid", (5, 1, 32)), ("sa", (5, 2, 6, 32)), ("ca", (5, 2, 6, 32)), ("sa", (5, 3, 6, 32))]
    + [("ca", (5, 3, 6, 32))],
)
def test_head_shapes(kind, shape):
    head = make_head(kind, 32, C).eval()
    assert head(torch.randn(shape)).shape == (5, C)


def test_heads_are_symmetric_in_their_samples():
    torch.manual_seed(0)
    tokens = torch.randn(4, 2, 6, 32)
    for head in (SAHead(32, C).eval(), CAHead(32, C).eval()):
        torch.testing.assert_close(head(tokens), head(tokens.flip(1)), atol=1e-5, rtol=1e-5)
    fc = FCHead(32, C).eval()
    torch.testing.assert_close(fc(tokens[:, :, 0]), fc(tokens[:, :, 0].flip(1)))
    assert fc.fc1.out_features == 8 and fc.dropout.p == 0.5  # d -> d/4, dropout 0.5 as in the release
    assert list(fc.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]  # the release's keys
    with pytest.raises(CprCoachError, match="multiple of 4"):
        make_head("ca", 30, C)
    table = sinusoidal_positions(10, 32)
    assert table.shape == (10, 32) and table[0, 1] == 1.0 and table[0, 0] == 0.0


# --- the sampler ---------------------------------------------------------------------------------


def test_sampler_covers_all_pairs_with_union_labels():
    class_index = np.repeat(np.arange(C), 3)  # three training samples per class
    sampler = CompositeSampler(class_index, C, orders=(2,), draws=2)
    groups = sampler.epoch(np.random.default_rng(0))
    (singles, single_targets), (members, targets) = groups
    np.testing.assert_array_equal(singles[:, 0], singles[:, 1])
    np.testing.assert_array_equal(single_targets.argmax(1), class_index)
    assert len(members) == 78 * 2
    pairs = class_index[members]
    assert (pairs[:, 0] != pairs[:, 1]).all() and (pairs != 0).all()  # different errors, never E00
    assert {tuple(sorted(p)) for p in pairs.tolist()} == set(itertools.combinations(range(1, C), 2))
    expected = np.zeros_like(targets)
    np.put_along_axis(expected, pairs, 1.0, axis=1)
    np.testing.assert_array_equal(targets, expected)  # the union of the members' labels
    assert (targets.sum(1) == 2).all() and (targets[:, 0] == 0).all()
    _, (again, _) = sampler.epoch(np.random.default_rng(1))
    assert not np.array_equal(members, again)  # members drawn afresh each epoch
    np.testing.assert_array_equal(class_index[again], pairs)  # ... for the same class pairs


def test_sampler_triples_and_missing_classes(caplog):
    class_index = np.repeat(np.arange(C), 2)
    groups = CompositeSampler(class_index, C, orders=(2, 3), draws=1, singles=False).epoch(np.random.default_rng(0))
    assert [m.shape for m, _ in groups] == [(78, 2), (286, 3)]
    assert (groups[1][1].sum(1) == 3).all()
    few = np.array([0, 1, 1, 5, 8])
    sampler = CompositeSampler(few, C, orders=(2,), draws=1)
    assert "no training samples of error classes" in caplog.text
    assert sampler.combinations[2].tolist() == [[1, 5], [1, 8], [5, 8]]
    with pytest.raises(CprCoachError, match="too few error classes"):
        CompositeSampler(np.array([0, 3]), C, orders=(2,), draws=1)
    two = CompositeSampler(np.array([0, 5, 8]), C, orders=(2, 3), draws=1)  # no triple of two errors
    assert list(two.combinations) == [2] and [m.shape for m, _ in two.epoch(np.random.default_rng(0))] == [
        (3, 2),
        (1, 2),
    ]


# --- training ------------------------------------------------------------------------------------


def toy_skeletons(n_per_class: int, classes: int, frames: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separable skeleton sequences: class k raises joint k by 1 (plus noise)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.normal(0, 0.3, (len(y), 3, frames, V)).astype(np.float32)
    x[np.arange(len(y)), 1, :, y] += 1.5
    x[:, 2] = 1.0
    return x, y


def test_backbone_learns_a_separable_problem_and_repeats():
    x, y = toy_skeletons(8, 4)
    training = {"epochs": 30, "batch_size": 8, "lr": 1e-2, "label_smoothing": 0.0}
    settings = from_section(SkeletonSettings, "model.skeleton", training)
    cpu = torch.device("cpu")

    def batches() -> SkeletonBatches:
        return SkeletonBatches(x, y, settings.batch_size, settings.crop, seed=3, device=cpu)

    torch.manual_seed(0)
    model = STGCN(TINY)
    history = fit(model, batches(), settings, cpu)
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    test_x, test_y = toy_skeletons(4, 4, seed=1)
    with torch.no_grad():
        accuracy = (model(torch.from_numpy(test_x)).argmax(1).numpy() == test_y).mean()
    assert accuracy >= 0.9
    torch.manual_seed(0)
    again = STGCN(TINY)
    repeated = fit(again, batches(), settings, cpu)
    assert [r["loss"] for r in repeated] == [r["loss"] for r in history]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, rtol=0, atol=0)


def toy_features(per_class: int, dim: int = 64, seed: int = 0) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Pooled features: class k is a fixed random direction plus noise; a composite is its errors' mean."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(0, 1, (C, dim))
    y = np.repeat(np.arange(C), per_class)
    single = directions[y] + rng.normal(0, 0.3, (len(y), dim))
    return torch.tensor(single, dtype=torch.float32), y, directions


def test_imagined_pairs_teach_composites_and_repeat():
    features, y, directions = toy_features(6)
    pairs = list(itertools.combinations(range(1, C), 2))
    composites = torch.tensor(np.array([(directions[a] + directions[b]) / 2 for a, b in pairs]), dtype=torch.float32)
    labels = np.zeros((len(pairs), C))
    labels[np.arange(len(pairs))[:, None], np.array(pairs)] = 1
    sampler = CompositeSampler(y, C, orders=(2,), draws=8)
    settings, seed = from_section(HeadSettings, "model.imagine", {"epochs": 40, "step": 30}), 5

    def run() -> tuple[np.ndarray, list[dict]]:
        torch.manual_seed(seed)
        head = make_head("fc", features.shape[1], C)
        history = fit_head(head, features, sampler.epoch, settings, seed)
        return predict_head(head, torch.cat([features, composites]), copies=2)[len(features) :], history

    scores, history = run()
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    imagined_map = np.nanmean(class_aps(labels, scores))
    assert imagined_map > 0.9
    # Exactly the second error of each pair ranks first or second among the 14 scores.
    assert np.mean(np.sort(np.argsort(-scores, axis=1)[:, :2], axis=1) == np.array(pairs)) > 0.9
    again, _ = run()
    np.testing.assert_array_equal(scores, again)


# --- the commands ----------------------------------------------------------------------------------


def test_commands_end_to_end(tmp_path, capsys):
    sheet, pattern = write_toy_dataset(tmp_path)
    out = tmp_path / "results"
    skeleton = {"frames": 16, "epochs": 3, "batch_size": 8, "channels": [8, 16], "strides": [1, 2]}
    net = ["--modality", "skeleton", "--settings", json.dumps({"skeleton": skeleton})]
    inputs = ["--samples", str(tmp_path / "samples.tsv"), "--poses", pattern]
    main(["backbone", *inputs, "--checkpoint", str(out / "backbone.pt"), "--features", str(out / "features.npz"), *net])
    features = load_features(out / "features.npz")
    assert features.pooled.shape == (len(sheet), 16) and features.tokens.shape == (len(sheet), 8, 16)
    assert features.meta["modality"] == "skeleton" and features.meta["classes"] == TABLE.single_codes
    model, checkpoint = load_checkpoint(out / "backbone.pt")
    assert checkpoint["input"] == {"frames": 16} and len(checkpoint["history"]) == 3 and model.feature_dim == 16
    assert checkpoint["architecture"] == "stgcn" and checkpoint["modality"] == "skeleton"

    for head in ("fc", "ca"):
        metrics_path, plot = out / head / "metrics.json", out / head / "per_class_ap.png"
        scores = out / head / "scores.npz"
        outputs = ["--metrics", str(metrics_path), "--plot", str(plot), "--checkpoint", str(out / head / "head.pt")]
        settings = ["--settings", json.dumps({"imagine": {"epochs": 3}, "seeds": [4, 5]})]
        main(
            [
                "imagine",
                "--features",
                str(out / "features.npz"),
                "--head",
                head,
                *outputs,
                "--scores",
                str(scores),
                *settings,
            ]
        )
        metrics = json.loads(metrics_path.read_text())
        assert plot.stat().st_size > 1000 and metrics["head"] == head and metrics["seed"] == 4  # the first seed
        assert metrics["fusion"] == "none" and metrics["class_names"]["E01"] == TABLE.name("E01")
        assert set(metrics["baselines"]) == {"sigmoid", "backbone"}
        assert set(metrics["summary"]) == {head, "sigmoid", "backbone"}
        timings = metrics["timings"]
        assert metrics["summary"][head]["train_s"] == pytest.approx(
            timings["backbone"]["train_s"] + timings["train_and_score_s"][head], abs=0.02
        )
        written = load_scores(scores)
        assert set(written.scores) == {head, "sigmoid", "backbone"} and written.scores[head].shape == (len(sheet), C)
        np.testing.assert_array_equal(written.video_id, features.video_id)
        assert written.meta["seed"] == 4 and written.meta["head"] == head
        composite = metrics["composite"]
        assert composite["videos"]["n_videos"] == 18 and composite["fused"]["n_videos"] == 9
        assert set(composite["views"]) == {"V1", "V2"}
        present = ("E01", "E03", "E04", "E05")
        assert composite["videos"]["skipped_classes"] == [c for c in TABLE.single_codes if c not in present]
        assert 0 <= composite["fused"]["mAP"] <= 1 and 0 <= composite["fused"]["mmit_mAP"] <= 1
        assert metrics["single_top1"]["videos"]["n_videos"] == 10
        assert load_head(out / head / "head.pt")[1]["kind"] == head

    capsys.readouterr()
    pose = tmp_path / "pose" / "P03" / "V1" / "E01+E04_01.npz"
    backbone = ["--backbone", str(out / "backbone.pt")]
    head = ["--head", str(out / "fc" / "head.pt")]
    threshold = ["--settings", json.dumps({"assess": {"threshold": 0}})]
    main(["assess", str(pose), "--prepared", *backbone, *head, "--json", *threshold])
    result = json.loads(capsys.readouterr().out)
    assert [c["code"] for c in result["classes"]] == TABLE.single_codes
    assert result["errors"] == TABLE.error_codes  # threshold 0: every error reaches it
    assert result["method"] == "ImagineNet-FC" and result["modality"] == "skeleton"
    main(["assess", str(pose), "--prepared", *backbone, "--out", str(out / "assess.json")])
    assert json.loads((out / "assess.json").read_text())["method"] == "backbone softmax"
    main(["assess", str(pose), "--prepared", *backbone])
    text = capsys.readouterr().out
    assert "backbone softmax" in text and "E13" in text
    with pytest.raises(SystemExit) as exit_info:
        main(["assess", str(tmp_path / "clip.mp4"), "--prepared", *backbone])
    assert exit_info.value.code == 2 and "no such recording" in capsys.readouterr().err
    (tmp_path / "clip.mp4").write_bytes(b"")
    with pytest.raises(SystemExit) as exit_info:
        main(["assess", str(tmp_path / "clip.mp4"), "--prepared", *backbone])
    assert exit_info.value.code == 2 and "reads a pose track (.npz)" in capsys.readouterr().err


def test_assess_scores_are_probabilities(tmp_path):
    sheet, pattern = write_toy_dataset(tmp_path, participants=("P01", "P03"), views=("V1",))
    inputs = ["--samples", str(tmp_path / "samples.tsv"), "--poses", pattern]
    outputs = ["--checkpoint", str(tmp_path / "b.pt"), "--features", str(tmp_path / "f.npz")]
    settings = {"skeleton": {"frames": 16, "epochs": 1, "channels": [8], "strides": [1]}}
    main(["backbone", "--modality", "skeleton", *inputs, *outputs, "--settings", json.dumps(settings)])
    model, meta = load_checkpoint(tmp_path / "b.pt")
    result = assess_input(torch.from_numpy(normalise(skeleton(), 16)[None]), model, meta, None, threshold=0.5)
    assert sum(c["probability"] for c in result["classes"]) == pytest.approx(1.0, abs=1e-3)
    with pytest.raises(CprCoachError, match="not a cprcoach-backbone/2"):
        torch.save({"format": "other"}, tmp_path / "x.pt")
        load_checkpoint(tmp_path / "x.pt")


def test_bundle_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"x must be \(N, 3, T, 26\)"):
        SkeletonBundle(np.zeros((2, 2, 4, V)), np.zeros((2, C)), *[np.array(["a", "b"])] * 6)
    with pytest.raises(ValueError, match="one entry per video"):
        SkeletonBundle(np.zeros((2, 3, 4, V)), np.zeros((1, C)), *[np.array(["a", "b"])] * 6)


# --- the registry ----------------------------------------------------------------------------------


def test_the_schema_offers_the_registry_names():
    model = yaml.safe_load(schema_path().read_text())["properties"]["model"]["properties"]
    assert model["modalities"]["items"]["enum"] == list(MODALITIES)
    assert model["heads"]["items"]["enum"] == list(HEAD_NAMES)
    assert model["assess"]["properties"]["modality"]["enum"] == list(MODALITIES)
    assert model["assess"]["properties"]["head"]["enum"] == list(ASSESS_METHODS)
    assert model["fusions"]["items"]["items"]["enum"] == list(MODALITIES)
    primary = model["primary"]["oneOf"][1]["properties"]
    assert primary["head"]["enum"] == list(HEAD_NAMES) and primary["fusion"]["enum"] == list(FUSION_KINDS)
    assert re.fullmatch(primary["modality"]["pattern"].strip("^$"), "+".join(MODALITIES))
    assert primary["modality"]["pattern"].strip("^$").replace("*", "+") == FUSION_REGEX  # a modality, or a fusion


def test_the_settings_read_every_key_of_their_sections():
    """A key of the schema is one field of its stage's settings, and its default lives in the schema alone."""
    model = yaml.safe_load(schema_path().read_text())["properties"]["model"]["properties"]
    for section, settings in (("skeleton", SkeletonSettings), ("video", VideoSettings), ("imagine", HeadSettings)):
        assert set(model[section]["properties"]) == {field.name for field in fields(settings)}
        assert all(field.default is MISSING for field in fields(settings))


def test_the_registry_imports_no_torch():
    """The Snakefile reads the names when it parses."""
    code = "import sys, cprcoach.model.registry; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
