"""The class table: counts, label vectors and the rules composites obey."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cprcoach.classes import check_table, load_classes
from cprcoach.errors import ConfigError


@pytest.fixture(scope="module")
def table():
    return load_classes()


def test_counts_match_the_paper(table):
    assert len(table.singles) == 14 and table.single_codes[0] == "E00"
    assert len(table.error_codes) == 13
    sizes = [len(code.split("+")) for code in table.composite_codes]
    assert (len(sizes), sizes.count(2), sizes.count(3), sizes.count(4)) == (74, 59, 10, 5)
    assert [cid for cid, _ in table.composites] == [f"K{i:02d}" for i in range(1, 75)]


def test_multi_hot_vectors(table):
    assert table.multi_hot("E00").tolist() == [1] + [0] * 13
    assert np.flatnonzero(table.multi_hot("E13")).tolist() == [13]
    vector = table.multi_hot("E02+E05+E07+E12")
    assert vector[0] == 0 and np.flatnonzero(vector).tolist() == [2, 5, 7, 12]
    assert table.multi_hot_string("E05+E08") == "00000100100000"
    assert table.name("E05+E08") == "bent_arms+rate_fast"


def test_composites_respect_the_exclusive_groups(table):
    assert check_table(table) == []
    for code in table.composite_codes:
        for a, b in itertools.combinations(code.split("+"), 2):
            assert not any(a in group and b in group for group in table.exclusive_groups), code


def test_unknown_code_is_rejected(table):
    assert not table.is_known("E14") and not table.is_known("E05+E01")
    with pytest.raises(KeyError):
        table.multi_hot("E14")


def test_a_custom_table_is_checked(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text(
        "singles:\n  - {code: E00, name: correct}\n  - {code: E01, name: a}\n  - {code: E02, name: b}\n"
        "exclusive_groups:\n  - [E01, E02]\n"
        "composites:\n  - {id: K01, code: E02+E01}\n  - {id: K02, code: E01+E02}\n"
    )
    with pytest.raises(ConfigError) as error:
        load_classes(path)
    text = str(error.value)
    assert "K01 E02+E01 must list distinct errors in ascending order" in text
    assert "K02 E01+E02 joins errors that exclude each other" in text


def test_missing_or_malformed_table(tmp_path):
    with pytest.raises(ConfigError, match="class table not found"):
        load_classes(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("singles: 3\n")
    with pytest.raises(ConfigError, match="malformed"):
        load_classes(tmp_path / "bad.yaml")
