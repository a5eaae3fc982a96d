"""Benchmarks of the stages (`cprcoach video|flow|pose|shards bench`): each times one stage on data it
makes (a synthetic recording, a moving photograph) against a reference measured in the same run;
and the GPU node check (`cprcoach gpu-check`), the whole workflow stage by stage.

The one package that may import everything, the synthetic generator included: the stages never
import it.
"""

from cprcoach.errors import CprCoachError


def parse_size(text: str) -> tuple[int, int]:
    """A `WIDTHxHEIGHT` command-line size, e.g. 4096x2160."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise CprCoachError(f"not a size: {text!r}", fix="write it as WIDTHxHEIGHT, e.g. 4096x2160") from None
    return width, height
