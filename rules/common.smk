# Sample discovery, input functions and the final targets, shared by every stage.

import shlex
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

TOOLS = Path(workflow.basedir).parent / "tools"
sys.path.insert(0, str(TOOLS))

from cprcoach.classes import load_classes
from cprcoach.config import validate_config
from cprcoach.errors import CprCoachError
from cprcoach.model.registry import (
    BACKBONE_SOFTMAX,
    BACKBONES,
    FUSION_REGEX,
    HEAD_NAMES,
    MODALITIES,
    fusion_name,
)
from cprcoach.samples import FIELD_REGEX, samples_from_config
from cprcoach.pose.groundtruth import sidecar_path
from cprcoach.settings import settings_json

# Jobs import the package from this checkout, also inside per-stage conda environments.
# (The prefix is formatted like a shell command, hence the doubled braces.)
shell.prefix(
    f"set -euo pipefail; export PYTHONPATH={shlex.quote(str(TOOLS))}${{{{PYTHONPATH:+:$PYTHONPATH}}}}; "
)

try:
    validate_config(config, ", ".join(map(str, workflow.configfiles)) or "config")
    CLASSES = load_classes(config["classes"])
    SAMPLES = samples_from_config(config).set_index("video_id", drop=False)
except CprCoachError as error:
    raise WorkflowError(str(error)) from None

RESULTS = config["results_dir"]
VIDEO = config["video"]
FLOW = config["flow"]
POSE = config["pose"]
SHARDS = config["shards"]
MODEL = config["model"]
CLIP_NAMES = list(VIDEO["clips"])
SEEDS = MODEL["seeds"]
# Each fusion by name (rgb+flow) and its modalities; the heads train on a modality's features or a fusion's.
FUSIONS = {fusion_name(members): list(members) for members in MODEL["fusions"]}
HEAD_INPUTS = [*MODEL["modalities"], *FUSIONS]
VIEWS = config["views"]
# One recording of one view, as it appears in every per-video path.
VIDEO_STEM = "{participant}/{view}/{label}_{take}"
# One recording (all its views): the per-video stages run one job per recording, so a job's start
# and bookkeeping are paid once for its four views.
RECORDING_STEM = "{participant}/{label}_{take}"


def stage_settings(section, *workflow_keys):
    """A stage's config section as its job's --settings, less the keys the workflow itself reads
    (a clip's name, a job's threads): a change of those does not rerun the jobs."""
    return settings_json(
        {
            key: value
            for key, value in config[section].items()
            if key not in workflow_keys
        }
    )


def views_of(pattern):
    """A per-video path pattern for every view of a job's recording (the other wildcards stay)."""
    return expand(pattern, view=VIEWS, allow_missing=True)


def recording_videos(wildcards):
    """The raw videos of a job's recording, one per view in the configured order."""
    return [
        SAMPLES.loc[
            f"{wildcards.participant}_{view}_{wildcards.label}_{wildcards.take}", "path"
        ]
        for view in VIEWS
    ]


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


def probe_path():
    """The resize stage's sidecar of one video; its clips lie beside it (clip_path)."""
    return f"{RESULTS}/clips/{VIDEO_STEM}.probe.json"


def showcase_samples():
    """Recordings the report shows: the first participant's first take of the correct class
    and of three composites, in every view."""
    first = SAMPLES[SAMPLES["participant"] == SAMPLES["participant"].iloc[0]]
    first = first[first["take"] == first["take"].iloc[0]]
    labels = list(dict.fromkeys(first["label"]))
    shown = [l for l in labels if not CLASSES.is_composite(l)][:1]
    shown += [l for l in labels if CLASSES.is_composite(l)][:3]
    return first[first["label"].isin(shown)]


SHOWCASE = showcase_samples()
SHOWCASE_FIRST_VIEW = SHOWCASE[SHOWCASE["view"] == config["views"][0]]


def flow_path():
    return f"{RESULTS}/flow/{VIDEO_STEM}.npz"


def pose_path():
    return f"{RESULTS}/pose/{VIDEO_STEM}.npz"


def pose_inputs(wildcards):
    """A recording's pose clips and probes; with the groundtruth backend, the synthetic sidecars too."""
    inputs = {
        "clips": expand(clip_path(POSE["clip"]), view=VIEWS, **wildcards),
        "probes": expand(probe_path(), view=VIEWS, **wildcards),
    }
    if POSE["backend"] == "groundtruth":
        inputs["sidecars"] = [str(sidecar_path(v)) for v in recording_videos(wildcards)]
    return inputs


def shard_path():
    return f"{RESULTS}/shards/{{participant}}_{{view}}.h5"


def shard_videos(wildcards):
    """The recordings of one shard (participant, view), in sample-sheet order."""
    return SAMPLES[
        (SAMPLES["participant"] == wildcards.participant)
        & (SAMPLES["view"] == wildcards.view)
    ]


def shard_inputs(wildcards):
    """A shard's per-video files, each list in sample-sheet order (what `shards build` expects)."""
    videos = shard_videos(wildcards)
    return {
        "rgb": per_video(clip_path(FLOW["clip"]), videos),
        "flow": per_video(flow_path(), videos),
        "pose": per_video(pose_path(), videos),
        "probe": per_video(probe_path(), videos),
    }


def all_shards():
    sessions = SAMPLES[["participant", "view"]].drop_duplicates()
    return [
        shard_path().format(participant=p, view=v)
        for p, v in sessions.itertuples(index=False)
    ]


def backbone_path(name):
    """A file of one modality's backbone of one seed: its checkpoint or the features of every video
    (for a fusion, the joined features)."""
    return f"{RESULTS}/model/{{modality}}/seed{{seed}}/{name}"


def head_path(name):
    """A file of one ImagineNet head of one modality (or fusion) and seed: metrics, scores, weights."""
    return f"{RESULTS}/model/{{modality}}/seed{{seed}}/{{head}}/{name}"


def late_path(name):
    """A file of the late fusion of one head run's scores of a fusion's modalities, for one seed."""
    return f"{RESULTS}/model/{{modality}}/seed{{seed}}/{{head}}/late/{name}"


def seeds_path(name, late=False):
    """A file of one head run over every seed (model.seeds): its mean and spread, its AP plot."""
    return f"{RESULTS}/model/{{modality}}/{{head}}/{'late/' if late else ''}{name}"


def backbone_threads(wildcards):
    """A backbone job's threads: torch's, and for rgb and flow the DataLoader's reading processes."""
    reads_shards = BACKBONES[wildcards.modality].section == "video"
    workers = MODEL["video"]["workers"] if reads_shards else 0
    return MODEL["threads"] + workers


def model_gpus():
    return 1 if MODEL["device"] == "cuda" else 0


def model_settings(*keys):
    """The model section's `keys` as a model command's --settings: only what the job reads,
    so that a change elsewhere (the heads' epochs, the list of modalities or seeds) does not rerun it.
    """
    return settings_json({key: MODEL[key] for key in keys})


def backbone_settings(wildcards):
    """A backbone job's settings: the device and its architecture's section (skeleton, video)."""
    return model_settings("device", BACKBONES[wildcards.modality].section)


def fusion_features(wildcards):
    """The features of a fusion's modalities for one seed, in the fusion's order."""
    return [
        backbone_path("features.npz").format(modality=member, seed=wildcards.seed)
        for member in FUSIONS[wildcards.modality]
    ]


def fusion_scores(wildcards):
    """The scores of one head run of each of a fusion's modalities for one seed, in the fusion's order."""
    return [
        head_path("scores.npz").format(
            modality=member, seed=wildcards.seed, head=wildcards.head
        )
        for member in FUSIONS[wildcards.modality]
    ]


def every_seed(pattern):
    """An input function: `pattern` (with {seed}) for every seed of model.seeds, the other wildcards the job's."""

    def paths(wildcards):
        return expand(pattern, seed=SEEDS, **wildcards)

    return paths


def all_runs_over_seeds(name):
    """`name` (metrics.json, per_class_ap.png) of every head run over the seeds: each modality's and
    fusion's heads, and each fusion's late fusion of its modalities' heads."""
    return [
        *(
            seeds_path(name).format(modality=modality, head=head)
            for modality in HEAD_INPUTS
            for head in MODEL["heads"]
        ),
        *(
            seeds_path(name, late=True).format(modality=fusion, head=head)
            for fusion in FUSIONS
            for head in MODEL["heads"]
        ),
    ]


def primary_head():
    """model.primary as `cprcoach model summary --primary` takes it (nothing when no head is named)."""
    primary = MODEL["primary"]
    if primary is None:
        return ""
    names = (shlex.quote(primary[key]) for key in ("modality", "fusion", "head"))
    return "--primary " + " ".join(names)


def assess_inputs(wildcards):
    """What one recording's assessment reads: the modality's input as the pipeline made it
    (pose track, RGB clip or flow), the backbone and, unless the backbone scores alone, the head
    (those of the first seed);
    for the coach report, the rescuer's pose track and the clip it was estimated on.
    """
    settings = MODEL["assess"]
    modality = settings["modality"]
    prepared = {
        "skeleton": pose_path(),
        "rgb": clip_path(FLOW["clip"]),
        "flow": flow_path(),
    }[modality]
    inputs = {
        "prepared": prepared.format(**wildcards),
        "backbone": backbone_path("backbone.pt").format(
            modality=modality, seed=SEEDS[0]
        ),
        "pose": pose_path().format(**wildcards),
        "pose_clip": clip_path(POSE["clip"]).format(**wildcards),
    }
    if settings["head"] != BACKBONE_SOFTMAX:
        inputs["head"] = head_path("head.pt").format(
            modality=modality, seed=SEEDS[0], head=settings["head"]
        )
    return inputs


def get_final_output():
    """The targets of the default rule: every stage's per-video outputs, tables and figures."""
    return [
        f"{RESULTS}/samples.tsv",
        *[path for clip in CLIP_NAMES for path in per_video(clip_path(clip))],
        f"{RESULTS}/tables/videos.tsv",
        f"{RESULTS}/plots/views.png",
        *per_video(flow_path()),
        f"{RESULTS}/plots/flow.png",
        *per_video(pose_path()),
        f"{RESULTS}/tables/pose_quality.tsv",
        *per_video(f"{RESULTS}/plots/skeletons/{VIDEO_STEM}.png", SHOWCASE_FIRST_VIEW),
        *all_shards(),
        f"{RESULTS}/shards/index.tsv",
        f"{RESULTS}/shards/check.json",
        f"{RESULTS}/tables/dataset_stats.tsv",
        f"{RESULTS}/exports/cprcoach_2d.pkl",
        *all_runs_over_seeds("metrics.json"),
        *all_runs_over_seeds("per_class_ap.png"),
        f"{RESULTS}/tables/model_summary.tsv",
        f"{RESULTS}/tables/model_gains.tsv",
    ]
