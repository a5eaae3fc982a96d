"""Load config.yaml and check it against the JSON schema the Snakefile also validates with."""

from __future__ import annotations

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


def validate_config(config: dict[str, Any], source: str | Path = "config") -> dict[str, Any]:
    """Check `config` in place (adding defaults) and return it; every problem is listed at once."""
    schema = yaml.safe_load(schema_path().read_text())
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'.'.join(map(str, e.absolute_path)) or '(top level)'}: {e.message}" for e in errors]
        raise ConfigError(
            "invalid configuration:\n    " + "\n    ".join(lines),
            path=source,
            fix=f"correct these keys; {schema_path()} documents each one",
        )
    return config


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
