# Sample discovery, input functions and the final targets, shared by every stage.

import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

TOOLS = Path(workflow.basedir).parent / "tools"
sys.path.insert(0, str(TOOLS))

from cprcoach.classes import load_classes
from cprcoach.errors import CprCoachError
from cprcoach.samples import FIELD_REGEX, samples_from_config

# Jobs import the package from this checkout, also inside per-stage conda environments.
# (The prefix is formatted like a shell command, hence the doubled braces.)
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={TOOLS}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

validate(config, str(TOOLS / "cprcoach" / "schemas" / "config.schema.yaml"))

try:
    CLASSES = load_classes(config["classes"])
    SAMPLES = samples_from_config(config).set_index("video_id", drop=False)
except CprCoachError as error:
    raise WorkflowError(str(error)) from None

RESULTS = config["results_dir"]
VIDEO = config["video"]
CLIP_NAMES = list(VIDEO["clips"])
# One recording of one view, as it appears in every per-video path.
VIDEO_STEM = "{participant}/{view}/{label}_{take}"


def sample(wildcards):
    """The sample-sheet row of the recording a job's wildcards name."""
    return SAMPLES.loc[
        f"{wildcards.participant}_{wildcards.view}_{wildcards.label}_{wildcards.take}"
    ]


def raw_video(wildcards):
    return sample(wildcards)["path"]


def per_video(pattern, samples=SAMPLES, **kwargs):
    """Expand a per-video path pattern (with {participant}, {view}, {label}, {take}) over samples."""
    return [
        pattern.format(
            participant=s.participant, view=s.view, label=s.label, take=s.take, **kwargs
        )
        for s in samples.itertuples(index=False)
    ]


def clip_path(clip):
    return f"{RESULTS}/clips/{VIDEO_STEM}.{clip}.mp4"


def contact_sheet_clips():
    """Clips of the first participant's first take: the correct class and three composites."""
    first = SAMPLES[SAMPLES["participant"] == SAMPLES["participant"].iloc[0]]
    first = first[first["take"] == first["take"].iloc[0]]
    labels = list(dict.fromkeys(first["label"]))
    shown = [l for l in labels if not CLASSES.is_composite(l)][:1]
    shown += [l for l in labels if CLASSES.is_composite(l)][:3]
    return per_video(clip_path(CLIP_NAMES[0]), first[first["label"].isin(shown)])


def get_final_output():
    """The targets of the default rule: sample sheet, every clip, the dataset table and figures."""
    return [
        f"{RESULTS}/samples.tsv",
        *[path for clip in CLIP_NAMES for path in per_video(clip_path(clip))],
        f"{RESULTS}/tables/videos.tsv",
        f"{RESULTS}/plots/views.png",
    ]
