"""Fusion and seeds: joined features, late fusion with weights learned on the training split, the
metrics of a run over its seeds and the summary's gains, on small features made here."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from conftest import tiny_config
from cprcoach.classes import load_classes
from cprcoach.config import validate_config
from cprcoach.errors import ConfigError, CprCoachError
from cprcoach.model.checkpoints import Features, Scores, load_features, load_scores, save_features, save_scores
from cprcoach.model.cli import main
from cprcoach.model.join import join_features, pool_tokens
from cprcoach.model.late import learn_weights, run_late, weight_grid
from cprcoach.model.seeds import over_seeds, spread
from cprcoach.model.summary import gains_table, paired_gain

TABLE = load_classes()
C = TABLE.num_outputs
# Two views of: 3 training singles, 2 held-out singles and 3 composites.
LABELS = ["E00", "E01", "E03", "E01", "E03", "E01+E04", "E03+E04", "E03+E05"]
SPLITS = ["train"] * 3 + ["test"] * 5
PARTICIPANTS = ["P01"] * 3 + ["P02"] * 5


def labels() -> dict[str, np.ndarray]:
    rows = [
        (label, split, p, view)
        for view in ("V1", "V2")
        for label, split, p in zip(LABELS, SPLITS, PARTICIPANTS, strict=True)
    ]
    return {
        "multi_hot": np.stack([np.array(list(TABLE.multi_hot_string(r[0])), dtype=np.uint8) for r in rows]),
        "video_id": np.array([f"{p}_{v}_{label}_{i:02d}" for i, (label, _, p, v) in enumerate(rows)]),
        "participant": np.array([r[2] for r in rows]),
        "view": np.array([r[3] for r in rows]),
        "label": np.array([r[0] for r in rows]),
        "take": np.array([f"{i % len(LABELS):02d}" for i in range(len(rows))]),
        "split": np.array([r[1] for r in rows]),
    }


def features(modality: str, dim: int, tokens: int, scale: float, draw: int = 0, seed: int = 0) -> Features:
    """Random features of the videos of labels(); `draw` seeds the numbers, `seed` is the backbone's."""
    rng = np.random.default_rng(draw)
    fields = labels()
    n = len(fields["video_id"])
    sequence = (scale * rng.normal(size=(n, tokens, dim))).astype(np.float32)
    meta = {
        "modality": modality,
        "classes": TABLE.single_codes,
        "class_names": [TABLE.name(c) for c in TABLE.single_codes],
        "checkpoint": f"{modality}.pt",
        "seed": seed,
        "epochs": 3,
        "timings": {"train_s": 10.0, "extract_s": 1.0},
    }
    logits = rng.normal(size=(n, C)).astype(np.float32)
    return Features(pooled=sequence.mean(1), tokens=sequence, logits=logits, meta=meta, **fields)


def test_joined_features_scale_pool_and_concatenate(tmp_path):
    skeleton, rgb = features("skeleton", 8, 6, scale=100.0), features("rgb", 4, 3, scale=0.01, draw=1)
    joined = join_features([skeleton, rgb], ["s.npz", "r.npz"])
    assert joined.pooled.shape == (16, 12) and joined.tokens.shape == (16, 3, 12)
    assert joined.meta["modality"] == "skeleton+rgb" and joined.meta["fusion"] == "features"
    assert joined.meta["timings"] == {"train_s": 20.0, "extract_s": 2.0}
    train = (joined.split == "train") & joined.is_single
    # Each modality is scaled to a unit root mean square on the training videos, whatever its size.
    for part in (joined.pooled[train, :8], joined.pooled[train, 8:]):
        assert np.sqrt(np.mean(part.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-5)
    # Tokens: the skeleton's 6 averaged in pairs down to the rgb's 3, then scaled.
    scale = joined.meta["scales"]["skeleton"]
    np.testing.assert_allclose(joined.tokens[:, 1, :8], skeleton.tokens[:, 2:4].mean(1) * scale, rtol=1e-5)
    np.testing.assert_allclose(joined.tokens[:, :, 8:], rgb.tokens * joined.meta["scales"]["rgb"], rtol=1e-5)
    # The backbone baseline of a fusion is the mean of the backbones' probabilities.
    softmax = [np.exp(f.logits) / np.exp(f.logits).sum(1, keepdims=True) for f in (skeleton, rgb)]
    probabilities = np.exp(joined.logits) / np.exp(joined.logits).sum(1, keepdims=True)
    np.testing.assert_allclose(probabilities, np.mean(softmax, axis=0), rtol=1e-5)
    np.testing.assert_array_equal(joined.video_id, skeleton.video_id)
    save_features(tmp_path / "joined.npz", joined)
    assert load_features(tmp_path / "joined.npz").meta["members"] == ["skeleton", "rgb"]


def test_joined_features_refuse_other_videos():
    skeleton, rgb = features("skeleton", 8, 6, 1.0), features("rgb", 4, 3, 1.0)
    rgb.video_id = rgb.video_id[::-1].copy()
    with pytest.raises(CprCoachError, match="not those of s.npz") as error:
        join_features([skeleton, rgb], ["s.npz", "r.npz"])
    assert "r.npz" in str(error.value)
    with pytest.raises(CprCoachError, match="two modalities or more"):
        join_features([skeleton], ["s.npz"])
    with pytest.raises(CprCoachError, match="trained with seed 2, that of s.npz with 0"):
        join_features([skeleton, features("rgb", 4, 3, 1.0, seed=2)], ["s.npz", "r.npz"])


def test_pool_tokens_averages_equal_stretches():
    tokens = np.arange(8, dtype=np.float32).reshape(1, 8, 1)
    assert pool_tokens(tokens, 4)[0, :, 0].tolist() == [0.5, 2.5, 4.5, 6.5]
    assert pool_tokens(tokens, 8)[0, :, 0].tolist() == list(range(8))


def test_weight_grid_is_the_simplex():
    grid = weight_grid(3)
    assert len(grid) == 66 and np.allclose(grid.sum(1), 1) and (grid >= 0).all()
    assert weight_grid(2, step=0.5).tolist() == [[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]]


def scores_of(modality: str, head_scores: dict[str, np.ndarray], head: str = "fc", seed: int = 0) -> Scores:
    meta = {
        "modality": modality,
        "head": head,
        "seed": seed,
        "classes": TABLE.single_codes,
        "class_names": [],
        "train_s": {method: 5.0 for method in head_scores},
    }
    return Scores(scores=head_scores, meta=meta, **labels())


def test_late_fusion_weights_come_from_the_training_split_alone():
    fields = labels()
    truth = fields["multi_hot"].astype(np.float64)
    rng = np.random.default_rng(0)
    noise = rng.random(truth.shape)
    train = fields["split"] == "train"
    # "good" ranks the training singles right, "bad" wrongly; on the test videos it is the other way round.
    good = np.where(train[:, None], truth + 0.1 * noise, noise)
    bad = np.where(train[:, None], 1 - truth + 0.1 * noise, truth + 0.1 * noise)
    weights, train_map = learn_weights([good, bad], scores_of("skeleton", {"fc": good}))
    assert weights[0] > 0.5 and train_map == pytest.approx(1.0)
    # Where the training split cannot tell the two apart, the weights are equal: the mean of probabilities.
    same = np.where(train[:, None], truth, noise)
    weights, _ = learn_weights([same, np.where(train[:, None], truth, 1 - noise)], scores_of("rgb", {"fc": same}))
    assert weights.tolist() == [0.5, 0.5]


def test_late_fusion_command_scores_every_method(tmp_path):
    rng = np.random.default_rng(1)
    truth = labels()["multi_hot"].astype(np.float64)
    paths = []
    for modality in ("rgb", "flow"):
        methods = {m: truth * 0.5 + rng.random(truth.shape) for m in ("fc", "sigmoid", "backbone")}
        paths.append(tmp_path / f"{modality}.npz")
        save_scores(paths[-1], scores_of(modality, methods))
    assert set(load_scores(paths[0]).scores) == {"fc", "sigmoid", "backbone"}
    main(["late", *map(str, paths), "--metrics", str(tmp_path / "late.json")])
    metrics = json.loads((tmp_path / "late.json").read_text())
    assert metrics["modality"] == "rgb+flow" and metrics["fusion"] == "late" and metrics["head"] == "fc"
    assert set(metrics["summary"]) == {"fc", "sigmoid", "backbone"} and set(metrics["baselines"]) == {
        "sigmoid",
        "backbone",
    }
    assert sum(metrics["weights"]["fc"]["weights"].values()) == pytest.approx(1.0)
    assert metrics["summary"]["fc"]["train_s"] >= 10.0  # both modalities' training, and the fusion's
    assert metrics["composite"]["fused"]["n_videos"] == 3
    other = scores_of("skeleton", {"fc": truth}, seed=1)
    save_scores(tmp_path / "other.npz", other)
    with pytest.raises(CprCoachError, match="seed 1"):
        run_late([paths[0], tmp_path / "other.npz"], tmp_path / "x.json")


def per_seed_metrics(
    seed: int, fc: float, sigmoid: float, backbone: float, modality="skeleton", fusion="none", members=None
):
    def report(value: float) -> dict:
        return {"composite": {"fused": {"per_class_AP": {"E00": None, "E01": value}}}}

    def figures(value: float) -> dict:
        return {"composite_mAP_fused": value, "single_top1": 0.5, "train_s": 10.0 + seed}

    return {
        "modality": modality,
        "fusion": fusion,
        "members": members,
        "head": "fc",
        "seed": seed,
        **report(fc),
        "baselines": {"sigmoid": report(sigmoid), "backbone": report(backbone)},
        "summary": {"fc": figures(fc), "sigmoid": figures(sigmoid), "backbone": figures(backbone)},
    }


def test_spread_over_seeds():
    assert spread([0.5, 0.7]) == {"mean": 0.6, "std": pytest.approx(math.sqrt(0.02), abs=1e-6), "values": [0.5, 0.7]}
    assert spread([0.5])["std"] is None and spread([0.5, None])["mean"] is None


def test_over_seeds_and_gains(tmp_path):
    paths = []
    for seed, fc in enumerate((0.70, 0.72, 0.74)):
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps(per_seed_metrics(seed, fc, fc - 0.06, fc - 0.01)))
    run = over_seeds(paths)
    assert run["seeds"] == [0, 1, 2] and run["summary"]["fc"]["composite_mAP_fused"]["mean"] == pytest.approx(0.72)
    assert run["per_class_AP_fused"]["sigmoid"]["E01"]["std"] == pytest.approx(0.02)
    assert run["per_class_AP_fused"]["fc"]["E00"]["mean"] is None
    fused_paths = []
    for seed in range(3):
        fused_paths.append(tmp_path / f"fused{seed}.json")
        fused = per_seed_metrics(seed, 0.8, 0.79, 0.78, "skeleton+rgb", "features", ["skeleton", "rgb"])
        fused_paths[-1].write_text(json.dumps(fused))
    fused = over_seeds(fused_paths)
    gains = gains_table([run, fused], primary=("skeleton", "none", "fc")).set_index(["comparison", "against"])
    sigmoid = gains.loc[("imagination", "skeleton sigmoid baseline [fc run]")]
    assert sigmoid["gain"] == pytest.approx(0.06) and sigmoid["beyond_noise"] and sigmoid["primary"]
    assert sigmoid["target_met"]
    backbone = gains.loc[("imagination", "skeleton backbone softmax [fc run]")]
    assert backbone["gain"] == pytest.approx(0.01) and not backbone["target_met"]
    # The fused head against the same head on each of its modalities (rgb was not trained alone here).
    fusion = gains.loc[("fusion", "skeleton ImagineNet-FC")]
    assert fusion["model"] == "skeleton+rgb (features) ImagineNet-FC" and fusion["gain"] == pytest.approx(0.08)
    assert len(gains.loc["fusion"]) == 1
    best = gains.loc["best"].iloc[0]
    assert best["model"] == "skeleton+rgb (features) ImagineNet-FC" and best["gain"] == pytest.approx(0.08)
    with pytest.raises(CprCoachError, match="is skeleton\\+rgb/features/fc"):
        over_seeds([paths[0], fused_paths[1]])
    with pytest.raises(CprCoachError, match="seeds repeat"):
        over_seeds([paths[0], paths[0]])


def test_paired_gain_uses_the_common_seeds():
    ours = {"values": [0.7, 0.8, 0.9]}
    theirs = {"values": [0.6, 0.6]}
    mean, std, n = paired_gain(ours, [0, 1, 2], theirs, [2, 0])
    assert n == 2 and mean == pytest.approx(0.2) and std == pytest.approx(math.sqrt(0.02))
    assert paired_gain(ours, [0, 1, 2], theirs, [5, 6]) == (None, None, 0)


def test_summary_command_writes_both_tables(tmp_path):
    paths = []
    for seed in range(2):
        paths.append(tmp_path / f"seed{seed}.json")
        paths[-1].write_text(json.dumps(per_seed_metrics(seed, 0.7 + seed / 100, 0.6, 0.65)))
    main(["seeds", *map(str, paths), "--out", str(tmp_path / "run.json"), "--plot", str(tmp_path / "ap.png")])
    assert (tmp_path / "ap.png").read_bytes()[:4] == b"\x89PNG"
    out, gains, markdown = tmp_path / "summary.tsv", tmp_path / "gains.tsv", tmp_path / "summary.md"
    tables = ["--out", str(out), "--gains", str(gains), "--markdown", str(markdown)]
    main(["summary", str(tmp_path / "run.json"), *tables, "--primary", "skeleton", "none", "fc"])
    table = pd.read_csv(out, sep="\t")
    assert table["method"].tolist() == ["ImagineNet-FC", "sigmoid baseline", "backbone softmax"]
    assert table.loc[0, "composite_mAP_fused"] == pytest.approx(0.705) and table.loc[0, "seeds"] == 2
    assert table.loc[1, "composite_mAP_fused_std"] == 0 and table.loc[0, "train_s"] == pytest.approx(10.5)
    assert pd.read_csv(gains, sep="\t")["primary"].tolist() == [True, True]
    lines = markdown.read_text().splitlines()
    assert lines[0].startswith("| modality | fusion | method | composite mAP | fused over views |")
    assert lines[2].startswith("| skeleton | none | ImagineNet-FC | n/a | 0.705 ± 0.007 | n/a |") and len(lines) == 5
    with pytest.raises(SystemExit):
        main(["summary", str(tmp_path / "run.json"), *tables, "--primary", "rgb", "none", "fc"])


def test_config_checks_fusions_and_the_primary_head(tmp_path):
    def config(**model) -> dict:
        base = tiny_config(tmp_path, seed=0, singles=["E00"], composites=[])
        return {**base, "model": {"modalities": ["skeleton", "rgb"], **model}}

    def primary(modality: str, fusion: str, head: str = "fc") -> dict:
        return {"modality": modality, "fusion": fusion, "head": head}

    assert validate_config(config())["model"]["primary"] is None  # no claim unless one is named
    validate_config(config(fusions=[["skeleton", "rgb"]], primary=primary("skeleton+rgb", "late")))
    with pytest.raises(ConfigError, match="fuses flow, not in model.modalities"):
        validate_config(config(fusions=[["rgb", "flow"]]))
    with pytest.raises(ConfigError, match="primary.modality: rgb\\+flow is not one of model.fusions"):
        validate_config(config(primary=primary("rgb+flow", "features")))
    with pytest.raises(ConfigError, match="primary.modality: flow is not in model.modalities"):
        validate_config(config(primary=primary("flow", "none")))
    with pytest.raises(ConfigError, match="primary.head: sa is not in model.heads"):
        validate_config(config(heads=["fc"], primary=primary("skeleton", "none", "sa")))
    with pytest.raises(ConfigError, match="model.primary"):
        validate_config(config(primary={"head": "fc"}))
    with pytest.raises(ConfigError, match="seeds"):
        validate_config(config(seeds=[1, 1]))
