"""A stage's settings from its config section in one step, the schema filling in every default.

Each stage declares a frozen dataclass whose fields are its section's keys (a trailing underscore
where the key is a Python keyword: `lambda_` for `lambda`; a field typed as another such dataclass
is built from the sub-section of that name), derived from ConfigSection with the section's name,
and builds it with `from_config`. The dataclasses
hold no defaults: the schema is the one place a default lives, so adding a key to a stage is one
edit in the schema and one field in the stage's settings. Keys a stage does not read (the
workflow's own, such as `threads` or `clip`) are checked by the schema and left out.

On the command line a stage takes its section as one JSON argument (`--settings`), which is what
the rules pass; left out, the stage runs with the schema's defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self, TypeVar

from cprcoach.config import section_settings

Settings = TypeVar("Settings")


class ConfigSection:
    """Base of a stage's settings dataclass: SECTION names its config section (dotted for a sub-section)."""

    SECTION: ClassVar[str]

    @classmethod
    def from_config(cls, values: Mapping[str, Any] | None = None) -> Self:
        """The settings from the section's values as config.yaml holds them, the schema's defaults filled in."""
        return from_section(cls, cls.SECTION, values)


def from_section(cls: type[Settings], section: str, values: Mapping[str, Any] | None = None) -> Settings:
    """`cls` built from config section `section` (dotted for a sub-section, e.g. `flow.tvl1`)."""
    return build(cls, section_settings(section, values))


def build(cls: type[Settings], values: Mapping[str, Any]) -> Settings:
    """`cls` from an already checked and completed mapping, its nested dataclasses from sub-mappings."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for field in dataclasses.fields(cls):
        value = values[field.name.rstrip("_")]
        hint = hints[field.name]
        kwargs[field.name] = build(hint, value) if dataclasses.is_dataclass(hint) else value
    return cls(**kwargs)


def as_section(settings: Any) -> dict[str, Any]:
    """The config section a settings object was built from (keys as in config.yaml), e.g. to record it."""
    return {
        field.name.rstrip("_"): _section_value(getattr(settings, field.name)) for field in dataclasses.fields(settings)
    }


def _section_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return as_section(value)
    if isinstance(value, Mapping):
        return {key: _section_value(item) for key, item in value.items()}
    return value


def add_settings_argument(parser: argparse.ArgumentParser, section: str) -> None:
    """`--settings JSON`: the config section `section` as the rules pass it (`{params.settings:q}`)."""
    parser.add_argument(
        "--settings",
        type=_json_section(section),
        default={},
        metavar="JSON",
        help=f"config.yaml's {section} section as JSON; keys left out take the schema's defaults",
    )


def _json_section(section: str):
    def parse(text: str) -> dict[str, Any]:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"not JSON ({error}): {text[:80]}") from None
        if not isinstance(values, dict):
            raise argparse.ArgumentTypeError(f"the {section} section must be a JSON object, not {text[:80]}")
        return values

    return parse


def settings_json(values: Mapping[str, Any]) -> str:
    """A section as the rules pass it: compact, sorted, so that Snakemake sees a change of settings."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))
