"""Sample discovery: the sheet from good names, one clear message for every bad one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cprcoach.classes import load_classes
from cprcoach.errors import SampleSheetError
from cprcoach.samples import COLUMNS, discover_samples, pattern_regex, read_sheet

VIEWS = ["V1", "V2", "V3", "V4"]
PATTERN = "{participant}/{view}/{label}_{take}.mp4"


def touch_recordings(raw, participant, label, take="01", views=VIEWS):
    for view in views:
        path = raw / participant / view / f"{label}_{take}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"video")


@pytest.fixture(scope="module")
def classes():
    return load_classes()


def test_pattern_parses_every_field():
    match = pattern_regex(PATTERN).match("P07/V3/E02+E05+E07+E11_12.mp4")
    assert match.groupdict() == {"participant": "P07", "view": "V3", "label": "E02+E05+E07+E11", "take": "12"}
    assert pattern_regex(PATTERN).match("P07/V3/E05_01.mp4.bak") is None


def test_sheet_from_good_names(tmp_path, classes):
    for participant in ["P01", "P02"]:
        for label in ["E00", "E04", "E04+E07"]:
            touch_recordings(tmp_path, participant, label)
    (tmp_path / "P01" / "V1" / "E04_01.gt.json").write_text("{}")  # sidecars are not videos
    sheet = discover_samples(tmp_path, PATTERN, VIEWS, classes, heldout_participants=["P02"])
    assert list(sheet.columns) == COLUMNS
    assert len(sheet) == 2 * 3 * 4
    row = sheet[sheet.video_id == "P01_V2_E04+E07_01"].iloc[0]
    assert (row.participant, row.view, row.label, row["take"]) == ("P01", "V2", "E04+E07", "01")
    assert (row.kind, row.n_errors, row.multi_hot, row.split) == ("composite", 2, "00001001000000", "test")
    assert row.path == str(tmp_path / "P01" / "V2" / "E04+E07_01.mp4")
    splits = sheet.groupby(["participant", "kind"])["split"].unique().map(list).to_dict()
    assert splits == {
        ("P01", "single"): ["train"],
        ("P01", "composite"): ["test"],
        ("P02", "single"): ["test"],  # held out
        ("P02", "composite"): ["test"],
    }
    # Ordered by participant, then the class table's order, then view.
    assert sheet.video_id.tolist()[:5] == [
        "P01_V1_E00_01",
        "P01_V2_E00_01",
        "P01_V3_E00_01",
        "P01_V4_E00_01",
        "P01_V1_E04_01",
    ]
    assert sheet[sheet.label == "E00"].multi_hot.unique().tolist() == ["10000000000000"]
    assert (sheet["file_label"] == sheet["label"]).all()


def test_labels_written_with_aliases_become_codes(tmp_path, classes):
    touch_recordings(tmp_path, "P01", "Bending Arms")
    touch_recordings(tmp_path, "P01", "squatting+bending_arms", take="02")
    touch_recordings(tmp_path, "P01", "0", take="03")
    sheet = discover_samples(tmp_path, PATTERN, VIEWS, classes)
    rows = sheet[sheet["view"] == "V1"].set_index("video_id")
    assert rows.loc["P01_V1_E04_01", "file_label"] == "Bending Arms"
    assert rows.loc["P01_V1_E04+E07_02", ["label", "file_label", "kind"]].tolist() == [
        "E04+E07",
        "squatting+bending_arms",
        "composite",
    ]
    assert rows.loc["P01_V1_E00_03", "multi_hot"] == "10000000000000"
    assert rows.loc["P01_V1_E04_01", "path"] == str(tmp_path / "P01" / "V1" / "Bending Arms_01.mp4")


@pytest.mark.parametrize("participant", ["P 01", "Pé01"])
def test_a_participant_name_that_does_not_parse_says_what_is_allowed(tmp_path, classes, participant):
    touch_recordings(tmp_path, participant, "E00")
    with pytest.raises(SampleSheetError) as error:
        discover_samples(tmp_path, PATTERN, VIEWS, classes)
    text = str(error.value)
    assert f"{participant}/V1/E00_01.mp4" in text
    assert "participant and view: ASCII letters and digits only, no spaces" in text


def test_every_problem_in_one_message(tmp_path, classes):
    touch_recordings(tmp_path, "P01", "E00")
    touch_recordings(tmp_path, "P01", "E04", views=VIEWS[:2])  # missing V3, V4
    touch_recordings(tmp_path, "P01", "E99")  # unknown class
    touch_recordings(tmp_path, "P01", "E01+E02")  # errors of one exclusive group
    touch_recordings(tmp_path, "P01", "Bendng Arms")  # a misspelt name
    touch_recordings(tmp_path, "P01", "E01", take="1")
    touch_recordings(tmp_path, "P01", "E01", take="01")  # duplicate take
    (tmp_path / "P01" / "V1" / "compressions final.mp4").write_bytes(b"x")  # does not parse
    (tmp_path / "P01" / "V9").mkdir()
    (tmp_path / "P01" / "V9" / "E00_01.mp4").write_bytes(b"x")  # unknown view
    with pytest.raises(SampleSheetError) as error:
        discover_samples(tmp_path, PATTERN, VIEWS, classes)
    text = str(error.value)
    assert str(tmp_path) in text and "fix:" in text
    assert "names that do not match raw_pattern" in text and "P01/V1/compressions final.mp4" in text
    assert "labels that are not classes of the class table" in text
    assert "P01/V1/E99_01.mp4: 'E99' is not a class name" in text
    assert "P01/V1/E01+E02_01.mp4: 'E01+E02' joins E01 (Overlap Hands) and E02 (Clenching Hands)" in text
    assert "which exclude each other (the hand form group)" in text
    assert (
        "P01/V1/Bendng Arms_01.mp4: 'Bendng Arms' is not a class name; the closest class is E04 (Bending Arms)" in text
    )
    assert "views not in the configured views" in text and "P01/V9/E00_01.mp4" in text
    assert "duplicates" in text and "P01/V1/E01_01.mp4 and P01/V1/E01_1.mp4" in text
    assert "recordings missing a view (1)" in text and "P01 E04 take 1: missing V3, V4" in text


def test_empty_and_missing_folders(tmp_path, classes):
    with pytest.raises(SampleSheetError, match="no videos match raw_pattern"):
        discover_samples(tmp_path, PATTERN, VIEWS, classes)
    with pytest.raises(SampleSheetError, match="raw video folder not found"):
        discover_samples(tmp_path / "absent", PATTERN, VIEWS, classes)


def test_bad_pattern_field(tmp_path, classes):
    with pytest.raises(SampleSheetError, match=r"unknown field \{camera\}"):
        discover_samples(tmp_path, "{participant}/{camera}/{label}_{take}.mp4", VIEWS, classes)


def test_cli_writes_the_sheet_and_explains_errors(tmp_path):
    touch_recordings(tmp_path / "raw", "P01", "E00")
    out = tmp_path / "samples.tsv"
    command = [
        sys.executable,
        "-m",
        "cprcoach.samples",
        "--raw-dir",
        str(tmp_path / "raw"),
        "--pattern",
        PATTERN,
        "--views",
        *VIEWS,
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, capture_output=True)
    sheet = read_sheet(out)
    assert sheet["take"].tolist() == ["01"] * 4 and sheet.multi_hot.iloc[0] == "10000000000000"
    touch_recordings(tmp_path / "raw", "P01", "E77")
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2
    assert "cprcoach: error:" in result.stderr and "E77" in result.stderr and "Traceback" not in result.stderr
