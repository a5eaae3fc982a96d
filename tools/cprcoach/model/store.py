"""Trained weights on disk: one dict per file, written atomically, read back without pickle.

torch.load(weights_only=True) reads only tensors and plain containers, so a checkpoint from
elsewhere cannot run code; the "format" key tells a backbone from a head from anything else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError


def save_payload(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_payload(path: str | Path, expected: str, fix: str, device: torch.device | str = "cpu") -> dict[str, Any]:
    """The dict saved at `path`, which must be of format `expected`; tensors mapped to `device`."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as error:
        raise CprCoachError(f"cannot read the file ({error})", path=path, fix=fix) from None
    if not isinstance(payload, dict) or payload.get("format") != expected:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CprCoachError(f"not a {expected} file ({found!r})", path=path, fix=fix)
    return payload


def load_weights(module: torch.nn.Module, state: dict[str, torch.Tensor], path: str | Path, fix: str) -> None:
    """Load a state dict into the network the file describes; a mismatch names the file, not a traceback."""
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise CprCoachError(f"its weights do not fit the network it describes ({error})", path=path, fix=fix) from None
