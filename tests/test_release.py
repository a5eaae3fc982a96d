"""The official release's files: its feature pickles in and out, and its FC checkpoint scored as it is."""

from __future__ import annotations

import json
import pickle
import pickletools

import numpy as np
import pytest
import torch

from cprcoach.classes import load_classes
from cprcoach.errors import CprCoachError
from cprcoach.model.checkpoints import load_features
from cprcoach.model.cli import main
from cprcoach.model.heads import load_release_fc
from cprcoach.model.metrics import average_precision
from cprcoach.model.release import export_release, import_release, read_release_pickle

TABLE = load_classes()
DIM = 32
PAIRS = ("E01+E04", "E02+E06", "E04+E07", "E05+E08", "E09+E12", "E10+E13")


def release_pickles(folder, per_class: int = 6, tokens: int | None = None):
    """Single and Multi pickles laid out as the release's: items (label, feature); a composite's
    feature is the mean of its errors' prototypes, as features of real composites roughly are."""
    rng = np.random.default_rng(0)
    prototypes = rng.normal(0, 1, (14, DIM)).astype(np.float32)

    def feature(classes):
        x = prototypes[classes].mean(axis=0) + rng.normal(0, 0.1, DIM).astype(np.float32)
        return np.tile(x, (tokens, 1)) if tokens else x

    singles = [(np.array([c]), feature([c])) for c in range(14) for _ in range(per_class)]
    multis = []
    for code in PAIRS:
        hot = TABLE.multi_hot(code).astype(np.float32).reshape(1, 14)
        multis += [(hot, feature(np.flatnonzero(hot[0]))) for _ in range(3)]
    paths = folder / "Single_STGCN.pkl", folder / "Multi_STGCN.pkl"
    for path, items in zip(paths, (singles, multis), strict=True):
        path.write_bytes(pickle.dumps(items))
    return paths, singles, multis


def test_import_gives_a_features_file_of_the_release_videos(tmp_path):
    (single, multi), singles, multis = release_pickles(tmp_path)
    features = import_release(single, multi, tmp_path / "imported")
    again = load_features(tmp_path / "imported" / "features.npz")
    assert len(again) == len(singles) + len(multis) == 14 * 6 + 18
    assert again.pooled.shape == (102, DIM) and again.tokens.shape == (102, 1, DIM)
    np.testing.assert_array_equal(again.pooled[0], singles[0][1])
    assert again.split.tolist() == ["train"] * 84 + ["test"] * 18
    assert again.label[:6].tolist() == ["E00"] * 6 and again.label[84] == "E01+E04"
    assert again.multi_hot[84].tolist() == TABLE.multi_hot("E01+E04").tolist()
    assert again.meta["source"]["single"] == str(single) and again.meta["classes"] == TABLE.single_codes
    # The refit softmax layer separates the (separable) training classes.
    assert (features.logits[:84].argmax(axis=1) == np.repeat(np.arange(14), 6)).mean() > 0.95


def test_import_reads_token_sequences_too(tmp_path):
    (single, multi), _, _ = release_pickles(tmp_path, tokens=8)
    features = import_release(single, multi, tmp_path / "out")
    assert features.tokens.shape == (102, 8, DIM) and features.pooled.shape == (102, DIM)
    np.testing.assert_allclose(features.pooled, features.tokens.mean(axis=1), rtol=1e-6)


def test_every_head_trains_and_scores_on_the_release_features(tmp_path, capsys):
    (single, multi), _, _ = release_pickles(tmp_path)
    main(["import-release", "--single", str(single), "--multi", str(multi), "--out", str(tmp_path / "release")])
    features = str(tmp_path / "release" / "features.npz")
    for head in ("fc", "sa"):
        metrics_path = tmp_path / "release" / head / "metrics.json"
        plot = tmp_path / "release" / head / "per_class_ap.png"
        main(["imagine", "--features", features, "--head", head, "--metrics", str(metrics_path), "--plot", str(plot)]
             + ["--settings", json.dumps({"imagine": {"epochs": 4, "draws": 2}})])  # fmt: skip
        metrics = json.loads(metrics_path.read_text())
        assert metrics["features_source"]["release"] == "github Shunli-Wang/CPR-Coach"
        assert set(metrics["summary"]) == {head, "sigmoid", "backbone"}
        assert metrics["composite"]["videos"]["n_videos"] == 18 and list(metrics["composite_by_order"]) == ["2"]
        assert metrics["summary"][head]["mAP_fused_2_errors"] == metrics["composite"]["fused"]["mAP"]
        assert metrics["single_top1"]["videos"]["n_videos"] == 0


def release_state(dim: int = DIM, classes: int = 14, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    hidden = dim // 4
    return {
        "fc1.weight": torch.randn(hidden, dim, generator=generator),
        "fc1.bias": torch.randn(hidden, generator=generator),
        "fc2.weight": torch.randn(classes, hidden, generator=generator),
        "fc2.bias": torch.randn(classes, generator=generator),
    }


def test_the_release_fc_checkpoint_scores_as_the_release_computes(tmp_path):
    (single, multi), _, multis = release_pickles(tmp_path)
    import_release(single, multi, tmp_path / "release")
    state = release_state()
    torch.save(state, tmp_path / "ST-GCN_pre-trained.pth")
    head = load_release_fc(tmp_path / "ST-GCN_pre-trained.pth")
    assert set(head.state_dict()) == set(state)
    # The release's eval: fc2(relu(dropout(fc1(x)))) on each test feature, dropout off; then sigmoid.
    x = np.stack([feature for _, feature in multis]).astype(np.float64)
    w1, b1, w2, b2 = (state[k].double().numpy() for k in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"))
    reference = 1.0 / (1.0 + np.exp(-(np.maximum(x @ w1.T + b1, 0.0) @ w2.T + b2)))
    with torch.no_grad():
        ours = torch.sigmoid(head(torch.from_numpy(x).float()[:, None].expand(-1, 2, -1))).numpy()
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-6)

    metrics_path = tmp_path / "release" / "release_fc" / "metrics.json"
    main(["imagine", "--features", str(tmp_path / "release" / "features.npz"), "--head", "fc", "--metrics",
          str(metrics_path), "--plot", str(metrics_path.with_name("ap.png")), "--release-checkpoint",
          str(tmp_path / "ST-GCN_pre-trained.pth"), "--checkpoint", str(metrics_path.with_name("head.pt"))])  # fmt: skip
    metrics = json.loads(metrics_path.read_text())
    assert metrics["head"] == "fc_release" and metrics["release_checkpoint"].endswith("ST-GCN_pre-trained.pth")
    labels = np.stack([hot.reshape(-1) for hot, _ in multis])
    for c, code in enumerate(TABLE.single_codes):
        expected = average_precision(labels[:, c], reference[:, c])
        got = metrics["composite"]["videos"]["per_class_AP"][code]
        assert (got is None and np.isnan(expected)) or got == pytest.approx(expected, abs=1e-6)


def test_a_checkpoint_that_is_not_the_release_fc_is_refused(tmp_path):
    torch.save({"weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(CprCoachError, match="not an ImagineNet-FC state dict"):
        load_release_fc(tmp_path / "other.pth")
    state = release_state()
    state["fc1.weight"] = torch.zeros(5, DIM)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(CprCoachError, match="not the d -> d/4 -> C head"):
        load_release_fc(tmp_path / "odd.pth")


def test_export_writes_the_release_layout_and_reads_back(tmp_path):
    (single, multi), singles, multis = release_pickles(tmp_path)
    import_release(single, multi, tmp_path / "release")
    single_out, multi_out = export_release(tmp_path / "release" / "features.npz", tmp_path / "pkl", pad_to=64)
    assert (single_out.name, multi_out.name) == ("Single_STGCN.pkl", "Multi_STGCN.pkl")
    # Nothing of numpy's private modules (numpy 2's numpy._core): older numpy reads the files too.
    globals_used = {arg for op, arg, _ in pickletools.genops(single_out.read_bytes()) if op.name == "GLOBAL"}
    assert globals_used == {"numpy array"}
    exported = pickle.loads(single_out.read_bytes())
    # As the release's FC_ComposeDataset reads it: item[0][0] the class, item[1] the feature.
    assert np.array([i[0][0] for i in exported]).tolist() == [c for c in range(14) for _ in range(6)]
    np.testing.assert_array_equal(exported[7][1][:DIM], singles[7][1])
    assert exported[7][1].shape == (64,) and not exported[7][1][DIM:].any()
    tests = pickle.loads(multi_out.read_bytes())
    assert np.array([i[0].reshape(-1) for i in tests]).shape == (18, 14)
    np.testing.assert_array_equal(tests[0][0].reshape(-1), multis[0][0].reshape(-1))
    # And back: the same features.
    back = import_release(single_out, multi_out, tmp_path / "back")
    np.testing.assert_array_equal(back.pooled[:, :DIM], load_features(tmp_path / "release" / "features.npz").pooled)
    with pytest.raises(CprCoachError, match="more than --pad-to"):
        export_release(tmp_path / "release" / "features.npz", tmp_path / "x", pad_to=8)
    with pytest.raises(CprCoachError, match="composites of \\[3\\] errors"):
        export_release(tmp_path / "release" / "features.npz", tmp_path / "x", orders=(3,))
    (tmp_path / "few").mkdir()
    (few_single, few_multi), _, _ = release_pickles(tmp_path / "few", per_class=3)
    items = pickle.loads(few_single.read_bytes())
    few_single.write_bytes(pickle.dumps(items[:16] + items[17:]))  # item 16 is one of the three of class 5
    import_release(few_single, few_multi, tmp_path / "few")
    with pytest.raises(CprCoachError, match="E05 have fewer training videos than the correct class"):
        export_release(tmp_path / "few" / "features.npz", tmp_path / "x")


def test_pickles_that_hold_more_than_arrays_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this would run",))

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps([(np.array([0]), Payload())]))
    with pytest.raises(CprCoachError, match="not a release feature pickle"):
        read_release_pickle(tmp_path / "evil.pkl")
    (tmp_path / "empty.pkl").write_bytes(pickle.dumps([]))
    with pytest.raises(CprCoachError, match="no list of videos"):
        read_release_pickle(tmp_path / "empty.pkl")
    (single, multi), _, _ = release_pickles(tmp_path)
    with pytest.raises(CprCoachError, match="multi-hot"):
        import_release(single, single, tmp_path / "out")
    with pytest.raises(CprCoachError, match="this is a Multi file"):
        import_release(multi, multi, tmp_path / "out")
    for label, reason in (
        (np.zeros(14), "not a composite"),
        (TABLE.multi_hot("E00") + TABLE.multi_hot("E04"), "not a composite"),
    ):
        (tmp_path / "bad_multi.pkl").write_bytes(pickle.dumps([(label, np.zeros(DIM, np.float32))]))
        with pytest.raises(CprCoachError, match=reason):
            import_release(single, tmp_path / "bad_multi.pkl", tmp_path / "out")
    for label in (np.array([]), np.array([np.nan]), np.array([14])):
        (tmp_path / "bad_single.pkl").write_bytes(pickle.dumps([(label, np.zeros(DIM, np.float32))]))
        with pytest.raises(CprCoachError, match="is not a class index"):
            import_release(tmp_path / "bad_single.pkl", multi, tmp_path / "out")
    (tmp_path / "narrow.pkl").write_bytes(pickle.dumps([(TABLE.multi_hot("E04+E07"), np.zeros(DIM // 2, np.float32))]))
    with pytest.raises(CprCoachError) as error:
        import_release(single, tmp_path / "narrow.pkl", tmp_path / "out")
    assert error.value.path == tmp_path / "narrow.pkl" and "the Single file's" in str(error.value)
