"""The class table (single classes, composites, multi-hot vectors), loaded from one data file."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from cprcoach.errors import ConfigError

CORRECT = "E00"


@dataclass(frozen=True)
class SingleClass:
    code: str
    name: str
    description: str


@dataclass(frozen=True)
class ClassTable:
    """Every label of the project; index 0 of a label vector is `correct`, index i is error i."""

    singles: tuple[SingleClass, ...]
    composites: tuple[tuple[str, str], ...]  # (id, code) such as ("K01", "E01+E05")
    exclusive_groups: tuple[frozenset[str], ...]
    source: Path

    @property
    def num_outputs(self) -> int:
        return len(self.singles)

    @property
    def single_codes(self) -> list[str]:
        return [c.code for c in self.singles]

    @property
    def error_codes(self) -> list[str]:
        return [c.code for c in self.singles if c.code != CORRECT]

    @property
    def composite_codes(self) -> list[str]:
        return [code for _, code in self.composites]

    @property
    def all_codes(self) -> list[str]:
        return self.single_codes + self.composite_codes

    def index(self, code: str) -> int:
        """Position of a single class in the label vector."""
        return self.single_codes.index(code)

    def name(self, code: str) -> str:
        """Readable name: the single class's short name, or the names of a composite's errors."""
        names = {c.code: c.name for c in self.singles}
        return "+".join(names[part] for part in self.errors_of(code)) if code != CORRECT else names[code]

    def is_known(self, code: str) -> bool:
        return code in self._known

    def is_composite(self, code: str) -> bool:
        return code in self._composite_set

    def errors_of(self, code: str) -> list[str]:
        """The single codes a label is made of (`E00` for the correct class)."""
        if not self.is_known(code):
            raise KeyError(f"unknown class code {code!r}")
        return code.split("+")

    def multi_hot(self, code: str) -> np.ndarray:
        """The label vector of a class: one 1 for a single class, one per error for a composite."""
        vector = np.zeros(self.num_outputs, dtype=np.uint8)
        for part in self.errors_of(code):
            vector[self.index(part)] = 1
        return vector

    def multi_hot_string(self, code: str) -> str:
        """The label vector as a string of 0/1 digits, for tables."""
        return "".join(str(int(v)) for v in self.multi_hot(code))

    @functools.cached_property
    def _known(self) -> frozenset[str]:
        return frozenset(self.all_codes)

    @functools.cached_property
    def _composite_set(self) -> frozenset[str]:
        return frozenset(self.composite_codes)


def default_table_path() -> Path:
    return Path(str(resources.files("cprcoach") / "data" / "classes.yaml"))


def load_classes(path: str | Path | None = None) -> ClassTable:
    """Load and check a class table; None gives the project's default (classes.md)."""
    path = Path(path) if path else default_table_path()
    try:
        raw = yaml.safe_load(path.read_text())
        singles = tuple(
            SingleClass(str(s["code"]), str(s["name"]), str(s.get("description", ""))) for s in raw["singles"]
        )
        composites = tuple((str(c["id"]), str(c["code"])) for c in raw["composites"])
        groups = tuple(frozenset(map(str, g)) for g in raw.get("exclusive_groups", []))
    except FileNotFoundError:
        raise ConfigError(
            "class table not found",
            path=path,
            fix="set `classes:` in config.yaml to an existing file, or null for the default",
        ) from None
    except (yaml.YAMLError, KeyError, TypeError) as error:
        raise ConfigError(
            f"class table is malformed ({error!r})",
            path=path,
            fix="follow the layout of cprcoach/data/classes.yaml: singles (code, name, description), exclusive_groups, composites (id, code)",
        ) from None
    table = ClassTable(singles, composites, groups, path)
    problems = check_table(table)
    if problems:
        raise ConfigError(
            "class table is inconsistent:\n    " + "\n    ".join(problems), path=path, fix="correct the listed entries"
        )
    return table


def check_table(table: ClassTable) -> list[str]:
    """Everything wrong with a table: duplicates, unordered or unknown parts, excluded pairs."""
    problems = []
    singles = table.single_codes
    if not singles or singles[0] != CORRECT:
        problems.append(f"the first single class must be {CORRECT} (correct)")
    for code in {c for c in singles if singles.count(c) > 1}:
        problems.append(f"single class {code} is listed twice")
    seen: set[str] = set()
    for cid, code in table.composites:
        parts = code.split("+")
        if code in seen:
            problems.append(f"{cid} {code} is listed twice")
        seen.add(code)
        if len(parts) < 2:
            problems.append(f"{cid} {code} has fewer than two errors")
        unknown = [p for p in parts if p not in singles or p == CORRECT]
        if unknown:
            problems.append(f"{cid} {code} uses {', '.join(unknown)}, which are not error classes")
            continue
        if parts != sorted(parts, key=singles.index) or len(set(parts)) != len(parts):
            problems.append(f"{cid} {code} must list distinct errors in ascending order")
        for group in table.exclusive_groups:
            clash = [a for a, b in itertools.combinations(parts, 2) if a in group and b in group]
            if clash:
                problems.append(f"{cid} {code} joins errors that exclude each other ({', '.join(sorted(group))})")
    return problems
