"""The class table (single classes, composites, multi-hot vectors), loaded from one data file.

A label is written the way people write it: a single class by its code (E04), its label index (4),
its official name (Bending Arms) or its short name (bending_arms), with case, spaces and
underscores ignored; a composite by its errors joined with '+', in any order and with any of those
aliases. `ClassTable.resolve` turns any of these into the canonical code (ascending error codes),
and says why a label is not a class, with the closest one that is.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from cprcoach.errors import ConfigError

CORRECT = "E00"
SPELLING_CUTOFF = 0.6  # how alike (difflib's ratio) a misspelt name must be to a class name to be suggested


def alias_key(text: str) -> str:
    """How aliases are compared: case, spaces and underscores ignored; an index without leading zeros."""
    key = re.sub(r"[\s_]+", "", str(text)).lower()
    return str(int(key)) if key.isascii() and key.isdigit() else key


class LabelError(ValueError):
    """A label that is not a class of the table: why, and the closest label that is."""

    def __init__(self, label: str, reason: str, closest: str | None):
        self.label, self.reason, self.closest = label, reason, closest
        hint = f"; the closest class is {closest}" if closest else ""
        super().__init__(f"{label!r} {reason}{hint}")


@dataclass(frozen=True)
class SingleClass:
    code: str
    name: str  # the official name, e.g. "Bending Arms"
    short: str  # snake_case, e.g. "bending_arms"
    description: str


def aliases_of(index: int, single: SingleClass) -> tuple[str, ...]:
    """The names a single class answers to: its code, its label index, its official and its short name."""
    return single.code, str(index), single.name, single.short


@dataclass(frozen=True)
class Composite:
    id: str  # K01..K74, as classes.md numbers them
    code: str  # E01+E04: the error codes in ascending order
    in_figure: bool = False  # one of the composites the release's dataset figure shows


@dataclass(frozen=True)
class ClassTable:
    """Every label of the project; index 0 of a label vector is the correct class, index i is error i."""

    singles: tuple[SingleClass, ...]
    composites: tuple[Composite, ...]
    exclusive_groups: dict[str, frozenset[str]]
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
        return [c.code for c in self.composites]

    @property
    def all_codes(self) -> list[str]:
        return self.single_codes + self.composite_codes

    @property
    def code_regex(self) -> str:
        """A regular expression matching exactly the canonical codes (for Snakemake's wildcards)."""
        return "|".join(re.escape(code) for code in sorted(self.all_codes, key=len, reverse=True))

    def index(self, code: str) -> int:
        """Position of a single class in the label vector."""
        return self.single_codes.index(code)

    def single(self, code: str) -> SingleClass:
        return self.singles[self.index(code)]

    def name(self, code: str) -> str:
        """The official name: of a single class, or its errors' joined with ' + ' for a composite."""
        return " + ".join(self.single(part).name for part in self.errors_of(code))

    def is_known(self, code: str) -> bool:
        return code in self._known

    def is_composite(self, code: str) -> bool:
        return code in self._composite_set

    def errors_of(self, code: str) -> list[str]:
        """The single codes a label is made of (`E00` for the correct class)."""
        if not self.is_known(code):
            raise KeyError(f"unknown class code {code!r}")
        return code.split("+")

    def n_errors(self, code: str) -> int:
        return sum(part != CORRECT for part in self.errors_of(code))

    def multi_hot(self, code: str) -> np.ndarray:
        """The label vector of a class: one 1 for a single class, one per error for a composite."""
        vector = np.zeros(self.num_outputs, dtype=np.uint8)
        for part in self.errors_of(code):
            vector[self.index(part)] = 1
        return vector

    def multi_hot_string(self, code: str) -> str:
        """The label vector as a string of 0/1 digits, for tables."""
        return "".join(str(int(v)) for v in self.multi_hot(code))

    def code_of_vector(self, vector: np.ndarray) -> str:
        """The code a label vector stands for (its classes joined in ascending order), known or not."""
        hot = [self.single_codes[i] for i in np.flatnonzero(np.asarray(vector).reshape(-1))]
        if not hot:
            raise ValueError("a label vector without any class")
        if len(hot) > 1 and CORRECT in hot:
            raise ValueError(f"a label vector of {CORRECT} and errors: {'+'.join(hot)}")
        return "+".join(hot)

    def clash(self, codes: list[str]) -> tuple[str, list[str]] | None:
        """The first exclusive group two of `codes` belong to, with those codes; None if none."""
        for group, members in self.exclusive_groups.items():
            inside = [c for c in codes if c in members]
            if len(inside) > 1:
                return group, inside
        return None

    def resolve(self, label: str) -> str:
        """The canonical code of a label written with any aliases, in any order; LabelError if none."""
        parts = str(label).split("+")
        found = [self._aliases.get(alias_key(part)) for part in parts]
        unknown = [repr(part.strip()) for part, code in zip(parts, found, strict=True) if code is None]
        if unknown:
            reason = (
                "is not a class name"
                if len(parts) == 1
                else f"names no class: {', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not a class name"
            )
            raise LabelError(label, reason, self._closest_spelling(parts, found))
        codes = [code for code in found if code is not None]
        if len(codes) > 1 and CORRECT in codes:
            raise LabelError(
                label, f"joins {self.name(CORRECT)} with errors", self._nearest([c for c in codes if c != CORRECT])
            )
        if len(set(codes)) != len(codes):
            repeated = sorted({c for c in codes if codes.count(c) > 1})
            raise LabelError(label, f"lists {', '.join(repeated)} twice", self._nearest(sorted(set(codes))))
        code = "+".join(sorted(codes, key=self.index))
        if self.is_known(code):
            return code
        clash = self.clash(code.split("+"))
        if clash is not None:
            group, inside = clash
            names = " and ".join(f"{c} ({self.single(c).name})" for c in inside)
            reason = f"joins {names}, which exclude each other (the {group} group)"
        else:
            written = "is" if code == label else f"is {code}, which is"
            reason = f"{written} not one of the {len(self.composites)} composites of the class table"
        raise LabelError(label, reason, self._nearest(code.split("+")))

    def _described(self, code: str) -> str:
        return f"{code} ({self.name(code)})"

    def _closest_spelling(self, parts: list[str], codes: list[str | None]) -> str | None:
        """The class the misspelt parts most likely meant: each replaced by its closest name; the
        whole label where that makes a class of the table, else the nearest class of those errors."""
        guesses = []
        for part, code in zip(parts, codes, strict=True):
            if code is None:
                close = difflib.get_close_matches(alias_key(part), list(self._aliases), n=1, cutoff=SPELLING_CUTOFF)
                code = self._aliases[close[0]] if close else None
            if code is not None:
                guesses.append(code)
        if not guesses:
            return None
        code = "+".join(sorted(set(guesses), key=self.index))
        return self._described(code) if self.is_known(code) else self._nearest(guesses)

    def _nearest(self, codes: list[str]) -> str | None:
        """The table's label sharing the most errors with `codes` (and adding the fewest)."""
        wanted = set(codes)

        def score(candidate: str) -> tuple[int, int]:
            parts = set(candidate.split("+"))
            return len(parts & wanted), -len(parts - wanted)

        best = max(self.all_codes, key=score)
        return self._described(best) if score(best)[0] else None

    @functools.cached_property
    def _aliases(self) -> dict[str, str]:
        return {
            alias_key(alias): single.code
            for index, single in enumerate(self.singles)
            for alias in aliases_of(index, single)
        }

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
    fix = (
        "follow the layout of cprcoach/data/classes.yaml: singles (code, name, short, description), "
        "exclusive_groups (name: [codes]), composites (id, code, in_figure)"
    )
    try:
        raw = yaml.safe_load(path.read_text())
        singles = tuple(
            SingleClass(str(s["code"]), str(s["name"]), str(s["short"]), str(s.get("description", "")))
            for s in raw["singles"]
        )
        composites = tuple(
            Composite(str(c["id"]), str(c["code"]), bool(c.get("in_figure", False))) for c in raw["composites"]
        )
        groups = {str(name): frozenset(map(str, codes)) for name, codes in (raw.get("exclusive_groups") or {}).items()}
    except FileNotFoundError:
        raise ConfigError(
            "class table not found",
            path=path,
            fix="set `classes:` in config.yaml to an existing file, or null for the default",
        ) from None
    except (yaml.YAMLError, KeyError, TypeError, AttributeError) as error:
        raise ConfigError(f"class table is malformed ({error!r})", path=path, fix=fix) from None
    table = ClassTable(singles, composites, groups, path)
    problems = check_table(table)
    if problems:
        raise ConfigError(
            "class table is inconsistent:\n    " + "\n    ".join(problems), path=path, fix="correct the listed entries"
        )
    return table


def check_table(table: ClassTable) -> list[str]:
    """Everything wrong with a table: duplicates, unordered or unknown parts, excluded pairs, shared aliases."""
    problems = []
    singles = table.single_codes
    if not singles or singles[0] != CORRECT:
        problems.append(f"the first single class must be {CORRECT} (correct)")
    for code in sorted({c for c in singles if singles.count(c) > 1}):
        problems.append(f"single class {code} is listed twice")
    owners: dict[str, set[str]] = {}
    for index, single in enumerate(table.singles):
        for alias in aliases_of(index, single):
            owners.setdefault(alias_key(alias), set()).add(single.code)
    for alias, codes in sorted(owners.items()):
        if len(codes) > 1:
            problems.append(f"the name {alias!r} belongs to {', '.join(sorted(codes))}")
    for group, members in table.exclusive_groups.items():
        unknown = sorted(members - set(singles) - {CORRECT}) + sorted(members & {CORRECT})
        if unknown:
            problems.append(f"exclusive group {group!r} lists {', '.join(unknown)}, which are not error classes")
    seen: set[str] = set()
    for composite in table.composites:
        cid, code = composite.id, composite.code
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
        clash = table.clash(parts)
        if clash is not None:
            problems.append(f"{cid} {code} joins errors that exclude each other ({clash[0]}: {', '.join(clash[1])})")
    return problems
