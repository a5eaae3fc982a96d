"""Load config.yaml and check it against the JSON schema the Snakefile also validates with."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cprcoach.errors import ConfigError
from cprcoach.model.registry import fusion_name


def schema_path() -> Path:
    return Path(str(resources.files("cprcoach") / "schemas" / "config.schema.yaml"))


def _with_defaults(validator_class: type) -> type:
    """A validator that fills in schema defaults, as snakemake.utils.validate does."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _problems(schema: dict[str, Any], instance: Any, prefix: str = "") -> list[str]:
    """Check `instance` in place (adding defaults); one line per problem, named by its key."""
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [
        f"{'.'.join([prefix, *map(str, e.absolute_path)]).strip('.') or '(top level)'}: {e.message}" for e in errors
    ]


def _cross_problems(config: dict[str, Any]) -> list[str]:
    """What the schema cannot say: keys that must name another key's entries."""
    video = config.get("video", {})
    clips = video.get("clips", {})
    problems = [
        f"{stage}.clip: {config[stage]['clip']!r} is not a clip of video.clips ({', '.join(clips)})"
        for stage in ("flow", "pose")
        if config.get(stage, {}).get("clip") not in clips
    ]
    if video.get("decoder") == "nvdec" and video["encoder"]["scale_flags"] != "area":
        problems.append(
            f"video.encoder.scale_flags: the GPU decoder (video.decoder: nvdec) scales with the area filter,"
            f" not {video['encoder']['scale_flags']}; set it to area, or video.decoder to cpu"
        )
    return problems + _model_problems(config["model"])


def _model_problems(model: dict[str, Any]) -> list[str]:
    """Fusions of trained modalities only, and a primary head the run trains."""
    modalities = model["modalities"]
    problems = [
        f"model.fusions: {fusion_name(members)} fuses {', '.join(m for m in members if m not in modalities)}, "
        f"not in model.modalities ({', '.join(modalities)})"
        for members in model["fusions"]
        if not set(members) <= set(modalities)
    ]
    primary = model["primary"]
    if primary is None:
        return problems
    fusions = [fusion_name(members) for members in model["fusions"]]
    if primary["fusion"] == "none" and primary["modality"] not in modalities:
        problems.append(f"model.primary.modality: {primary['modality']} is not in model.modalities")
    if primary["fusion"] != "none" and primary["modality"] not in fusions:
        problems.append(
            f"model.primary.modality: {primary['modality']} is not one of model.fusions ({', '.join(fusions) or 'none'})"
        )
    if primary["head"] not in model["heads"]:
        problems.append(f"model.primary.head: {primary['head']} is not in model.heads")
    return problems


def validate_config(config: dict[str, Any], source: str | Path = "config") -> dict[str, Any]:
    """Check `config` in place (adding defaults) and return it; every problem is listed at once.

    `source` names the file (or files) the config came from, for the message."""
    problems = _problems(yaml.safe_load(schema_path().read_text()), config)
    if not problems:
        problems = _cross_problems(config)
    if problems:
        raise ConfigError(
            "invalid configuration:\n    " + "\n    ".join(problems),
            path=source,
            fix=f"correct these keys; {schema_path()} documents each one",
        )
    return config


def section_settings(name: str, values: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One config section (e.g. `pose`, or `flow.tvl1`) checked, with the schema's defaults filled in."""
    whole = yaml.safe_load(schema_path().read_text())
    schema = whole
    for key in name.split("."):
        schema = schema["properties"][key]
    schema = {**schema, "$defs": whole.get("$defs", {})}  # what the section's $refs point to
    settings = copy.deepcopy(dict(values or {}))
    problems = _problems(schema, settings, prefix=name)
    if problems:
        raise ConfigError(
            f"invalid {name} settings:\n    " + "\n    ".join(problems),
            fix=f"correct these keys in config.yaml; {schema_path()} documents each one",
        )
    return settings


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A config file's mapping; a missing file or a YAML error names the file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(
            "configuration file not found", path=path, fix="pass --config with the path of config.yaml"
        ) from None
    except yaml.YAMLError as error:
        raise ConfigError(f"not valid YAML: {error}", path=path, fix="correct the YAML syntax") from None
    if not isinstance(config, dict):
        raise ConfigError(
            "the configuration must be a mapping of keys to values", path=path, fix="see config.yaml in the repository"
        )
    return config


def load_config(path: str | Path) -> dict[str, Any]:
    """A config file, checked against the schema with its defaults filled in."""
    return validate_config(load_yaml(path), path)
