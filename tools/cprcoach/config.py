"""Load config.yaml and check it against the JSON schema the Snakefile also validates with."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from cprcoach.errors import ConfigError


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


def validate_config(config: dict[str, Any], source: str | Path = "config") -> dict[str, Any]:
    """Check `config` in place (adding defaults) and return it; every problem is listed at once."""
    problems = _problems(yaml.safe_load(schema_path().read_text()), config)
    if problems:
        raise ConfigError(
            "invalid configuration:\n    " + "\n    ".join(problems),
            path=source,
            fix=f"correct these keys; {schema_path()} documents each one",
        )
    return config


def section_settings(name: str, values: dict[str, Any] | None = None) -> dict[str, Any]:
    """One top-level section (e.g. `pose`) with the schema's defaults, for a stage run on its own."""
    settings = copy.deepcopy(values or {})
    problems = _problems(yaml.safe_load(schema_path().read_text())["properties"][name], settings, prefix=name)
    if problems:
        raise ConfigError(
            f"invalid {name} settings:\n    " + "\n    ".join(problems),
            fix=f"correct these keys in config.yaml; {schema_path()} documents each one",
        )
    return settings


def load_config(path: str | Path) -> dict[str, Any]:
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
    return validate_config(config, path)
