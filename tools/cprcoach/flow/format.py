"""The flow file: one compressed .npz per video, what the shards, the report figure and assessment read.

Arrays, T = frames of the clip:
  x, y   (T-1, H, W)  uint8 in the mmaction2/denseflow convention (clipped to +-bound, 0-255) or
                      float16 pixels; pair i is the motion from frame i to frame i+1
  meta   0-d str      JSON: format, clip, backend, device, TV-L1 parameters, bound, output, sizes,
                      timing, versions
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cprcoach.arrays import npz_length
from cprcoach.atomic import atomic_path
from cprcoach.errors import CprCoachError

FLOW_FORMAT = "cprcoach-flow/1"
RERUN = "delete it and rerun the flow stage (`cprcoach flow extract`)"


def write_flow(path: str | Path, x: np.ndarray, y: np.ndarray, meta: dict[str, Any]) -> dict[str, Any]:
    """Write atomically (a reader never sees a half-written file); returns the metadata as stored."""
    stored = {"format": FLOW_FORMAT, **meta}
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, x=x, y=y, meta=np.array(json.dumps(stored)))
    return stored


def read_flow(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """x, y and the metadata of a flow file; anything else is a CprCoachError naming the file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            x, y, meta = data["x"], data["y"], json.loads(str(data["meta"]))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise CprCoachError(f"not a readable flow file ({error})", path=path, fix=RERUN) from None
    if meta.get("format") != FLOW_FORMAT:
        raise CprCoachError(f"not a {FLOW_FORMAT} file (format {meta.get('format')!r})", path=path, fix=RERUN)
    return x, y, meta


def flow_pairs(path: str | Path) -> int:
    """How many frame pairs a flow file holds, from its header alone."""
    return npz_length(path, "x")
