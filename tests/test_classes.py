"""The class table: the official classes in the release's order, label vectors, aliases and the rules composites obey."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cprcoach.classes import LabelError, check_table, load_classes
from cprcoach.errors import ConfigError

# The release's dataset figure, left to right: its label indices 0-13.
OFFICIAL = [
    "Correct",
    "Overlap Hands",
    "Clenching Hands",
    "SingleHand",
    "Bending Arms",
    "Tilting Arms",
    "Jump Pressing",
    "Squatting",
    "Standing",
    "Wrong Position",
    "Insufficient Pressing",
    "Slow Frequency",
    "Excessive Pressing",
    "Random Position Pressing",
]


@pytest.fixture(scope="module")
def table():
    return load_classes()


def test_the_official_classes_in_the_release_order(table):
    assert [c.name for c in table.singles] == OFFICIAL
    assert table.single_codes == [f"E{i:02d}" for i in range(14)]
    assert [table.index(code) for code in table.single_codes] == list(range(14))
    assert table.single("E04").short == "bending_arms" and table.single("E03").short == "single_hand"
    assert {name: sorted(codes) for name, codes in table.exclusive_groups.items()} == {
        "hand form": ["E01", "E02", "E03"],
        "body posture": ["E07", "E08"],
        "depth": ["E10", "E12"],
        "hand position": ["E09", "E13"],
    }


def test_counts_match_the_paper(table):
    assert len(table.singles) == 14 and len(table.error_codes) == 13
    sizes = [table.n_errors(code) for code in table.composite_codes]
    assert (len(sizes), sizes.count(2), sizes.count(3), sizes.count(4)) == (74, 59, 10, 5)
    assert [c.id for c in table.composites] == [f"K{i:02d}" for i in range(1, 75)]
    shown = [c.code for c in table.composites if c.in_figure]
    assert len(shown) == 12 and {"E04+E07", "E06+E08+E10+E13", "E01+E05+E06"} <= set(shown)


def test_every_error_is_in_about_as_many_pairs(table):
    pairs = [code.split("+") for code in table.composite_codes if table.n_errors(code) == 2]
    counts = [sum(code in pair for pair in pairs) for code in table.error_codes]
    assert min(counts) >= 9 and max(counts) <= 10


def test_multi_hot_vectors(table):
    assert table.multi_hot("E00").tolist() == [1] + [0] * 13
    assert np.flatnonzero(table.multi_hot("E13")).tolist() == [13]
    vector = table.multi_hot("E03+E04+E05+E12")
    assert vector[0] == 0 and np.flatnonzero(vector).tolist() == [3, 4, 5, 12]
    assert table.multi_hot_string("E04+E07") == "00001001000000"
    assert table.name("E04+E07") == "Bending Arms + Squatting"
    assert table.code_of_vector(table.multi_hot("E02+E06")) == "E02+E06"
    assert next(c.id for c in table.composites if c.code == "E04+E07") == "K28"
    with pytest.raises(ValueError, match="E00 and errors"):
        table.code_of_vector(table.multi_hot("E00") + table.multi_hot("E04"))


def test_composites_respect_the_exclusive_groups(table):
    assert check_table(table) == []
    for code in table.composite_codes:
        for a, b in itertools.combinations(code.split("+"), 2):
            assert not any(a in group and b in group for group in table.exclusive_groups.values()), code


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("E04", "E04"),
        ("4", "E04"),
        ("04", "E04"),
        ("Bending Arms", "E04"),
        ("bending_arms", "E04"),
        ("BENDING ARMS", "E04"),
        ("SingleHand", "E03"),
        ("single hand", "E03"),
        ("squatting+E04", "E04+E07"),
        ("Squatting + bending arms", "E04+E07"),
        ("13+10", "E10+E13"),
        ("standing+jump_pressing+E13+insufficient pressing", "E06+E08+E10+E13"),
    ],
)
def test_labels_are_read_with_any_alias_in_any_order(table, written, code):
    assert table.resolve(written) == code


def test_a_label_that_is_no_class_says_why_and_the_closest(table):
    with pytest.raises(LabelError) as error:
        table.resolve("Bendng Arms")
    assert error.value.closest == "E04 (Bending Arms)" and "is not a class name" in str(error.value)
    with pytest.raises(LabelError) as error:
        table.resolve("E01+clenching hands")
    assert "exclude each other (the hand form group)" in error.value.reason
    assert "E01 (Overlap Hands) and E02 (Clenching Hands)" in error.value.reason
    with pytest.raises(LabelError) as error:
        table.resolve("E01+E02+E07")
    assert error.value.closest in ("E01+E07 (Overlap Hands + Squatting)", "E02+E07 (Clenching Hands + Squatting)")
    with pytest.raises(LabelError, match="not one of the 74 composites"):
        table.resolve("E01+E05")
    with pytest.raises(LabelError, match="joins Correct with errors"):
        table.resolve("E00+E04")
    with pytest.raises(LabelError, match="lists E04 twice"):
        table.resolve("E04+bending arms")
    with pytest.raises(LabelError) as error:
        table.resolve("squatting+bendng arms")  # one misspelt error: the composite it most likely meant
    assert error.value.closest == "E04+E07 (Bending Arms + Squatting)"
    for odd in ("1-3", "-1", "²", "E4 +"):  # hyphens and non-ASCII digits are not ignored
        with pytest.raises(LabelError):
            table.resolve(odd)


def test_unknown_code_is_rejected(table):
    assert not table.is_known("E14") and not table.is_known("E07+E04")
    with pytest.raises(KeyError):
        table.multi_hot("E14")


def test_a_custom_table_is_checked(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text(
        "singles:\n  - {code: E00, name: Correct, short: correct}\n  - {code: E01, name: A, short: a}\n"
        "  - {code: E02, name: B, short: a}\n"
        "exclusive_groups:\n  pair: [E01, E02]\n"
        "composites:\n  - {id: K01, code: E02+E01}\n  - {id: K02, code: E01+E02}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_classes(path)
    text = str(error.value)
    assert "K01 E02+E01 must list distinct errors in ascending order" in text
    assert "K02 E01+E02 joins errors that exclude each other (pair: E01, E02)" in text
    assert "the name 'a' belongs to E01, E02" in text


def test_missing_or_malformed_table(tmp_path):
    with pytest.raises(ConfigError, match="class table not found"):
        load_classes(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("singles: 3\n")
    with pytest.raises(ConfigError, match="malformed"):
        load_classes(tmp_path / "bad.yaml")
