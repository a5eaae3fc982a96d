"""config.yaml and its schema: the shipped configs validate, bad ones are explained."""

from __future__ import annotations

import copy

import pytest
import yaml

from conftest import REPO
from cprcoach.config import load_config, validate_config
from cprcoach.errors import ConfigError

SHIPPED = ["config.yaml", ".test/workflow/config.yaml"]  # the demo and the main test scenario: four views
SCENARIOS = sorted(str(path.relative_to(REPO)) for path in REPO.glob(".test/*/config.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_validate(name):
    config = load_config(REPO / name)
    assert config["video"]["encoder"]["preset"]  # defaults are filled in
    assert len(config["views"]) == 4


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_has_a_valid_config(name):
    assert load_config(REPO / name)["results_dir"].startswith("data/test/")
    assert set(SCENARIOS) >= {".test/workflow/config.yaml", ".test/slurm/config.yaml"}


def test_defaults_are_filled():
    config = validate_config(
        {
            "raw_dir": "raw",
            "raw_pattern": "{participant}/{view}/{label}_{take}.mp4",
            "views": ["V1"],
            "video": {
                "source": {"width": 64, "height": 32, "fps": 25},
                "clips": {"rgb": {"width": 32, "height": 16}, "pose": {"width": 64, "height": 32}},
            },
        }
    )
    assert config["results_dir"] == "results"
    assert config["split"] == {"heldout_participants": []}
    assert config["video"]["encoder"] == {"preset": "ultrafast", "crf": 18, "scale_flags": "area"}
    assert config["synth"]["composites"] == 12


def test_every_problem_is_listed_with_its_key():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    bad = copy.deepcopy(config)
    bad["video"]["clips"]["rgb"]["width"] = 171
    bad["raw_pattern"] = "{participant}/{label}.mp4"
    bad["colour"] = "red"
    del bad["views"]
    with pytest.raises(ConfigError) as error:
        validate_config(bad, "bad.yaml")
    text = str(error.value)
    assert text.startswith("bad.yaml: invalid configuration")
    assert "video.clips.rgb.width: 171 is not a multiple of 2" in text
    assert "raw_pattern" in text and "'views' is a required property" in text
    assert "'colour' was unexpected" in text
    assert "fix:" in text


def test_unreadable_config(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("raw_dir: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")
