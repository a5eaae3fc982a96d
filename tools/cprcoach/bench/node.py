"""The GPU node check (`scripts/gpu-check run`): the real workflow on a few synthetic 4K recordings,
stage by stage, and how long the whole CPR-Coach would take on this node.

It renders recordings at CPR-Coach's 4096x2160 and 25 fps, then runs the Snakefile once per stage
(`--until` that stage's rule), so each stage has the node to itself: the resize with the CPU
decoder on every core (into a results folder of its own) and with the GPU's decoders, TV-L1 flow
with the CUDA kernels, the rescuer's skeletons, the HDF5 shards, and last the model on CUDA and
the reports. For each stage it measures the wall time, the source frames per second, the CPU
cores its jobs used (their CPU time over the wall time) and, sampled through NVML, the GPU's
busy share and memory peak; from these it projects the stage on the full dataset
(4,544 videos, 2,217,756 frames). It prints one table and writes the same as JSON.

The projection is conservative: the stages' projected hours are summed, while Snakemake overlaps
a GPU stage with the CPU ones; and where a stage does not record each video's own seconds (pose,
shards), its time scales with the frames, each job's start-up included, though the real
recordings are 20 s long on average against the check's 4 s (StageResult). The skeletons come
from the synthetic ground truth, since no detector weights travel with the repository: the pose
row times the stage around the detector, not AlphaPose itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cprcoach.bench import parse_size
from cprcoach.config import load_yaml, validate_config
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.flow.format import read_flow
from cprcoach.logs import setup_logging
from cprcoach.synth.dataset import generate_dataset
from cprcoach.video.probe import PROBE_SUFFIX, read_probe

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
SNAKEFILE = REPO / "workflow" / "Snakefile"

# The whole CPR-Coach dataset (paper-brief.md): what the projection scales the check up to.
FULL_VIDEOS = 4544
FULL_FRAMES = 2_217_756
FULL_SIZE = (4096, 2160)
PREPROCESSING = ("resize", "flow", "pose", "shards")
TARGET_HOURS = 1.5  # projected preprocessing on one H100/H200 node with 16 cores
TARGET_NVDEC_SPEEDUP = 3.0  # NVDEC resize against the CPU decoder on all the node's cores
# The check's dataset: two participants (one held out), the correct class, two errors and their
# composite, in every view: enough videos to keep every core busy, few enough for six minutes.
SINGLES = ["E00", "E01", "E04"]
COMPOSITES = ["E01+E04"]
RECORDINGS = 2 * (len(SINGLES) + len(COMPOSITES))  # one resize, flow and pose job each


@dataclass(frozen=True)
class Stage:
    """One Snakemake run of the check: the rule it runs up to, in which results folder, with what."""

    name: str
    until: str | None  # None: the whole workflow (the model and the reports)
    results: str = "results"

    @property
    def reference(self) -> bool:
        """The CPU decoder's resize beside the GPU's: measured for the ratio, read by no later stage."""
        return self.results != "results"


STAGE_NAMES = ("resize", "flow", "pose", "shards", "model")


def stages(nvdec: bool, names: tuple[str, ...] = STAGE_NAMES) -> list[Stage]:
    """The check's runs in order. With the GPU's decoders the resize runs twice: with the CPU decoder
    on every core (into a results folder of its own), then with NVDEC (what the later stages read)."""
    runs = []
    if "resize" in names:
        if nvdec:
            runs.append(Stage("resize", "resized_clips", results="results-cpu-decoder"))
        runs.append(Stage("resize", "resized_clips"))
    until = {"flow": "optical_flow", "pose": "rescuer_pose", "shards": "shard", "model": None}
    return runs + [Stage(name, until[name]) for name in STAGE_NAMES[1:] if name in names]


def runs_on(stage: Stage, config: dict[str, Any]) -> str:
    """What did a stage's work, for the table: the decoder, the flow and model device, the pose backend."""
    if stage.name == "resize":
        return f"{config['video']['decoder']} decoder" + (", every core (reference)" if stage.reference else "")
    if stage.name == "flow":
        return f"{config['flow']['backend']} on {config['flow']['device']}"
    if stage.name == "pose":
        return f"{config['pose']['backend']} backend"
    if stage.name == "model":
        return f"{'+'.join(config['model']['modalities'])} on {config['model']['device']}"
    return "cpu"


def check_config(args: argparse.Namespace, decoder: str, results: str) -> dict[str, Any]:
    """config.yaml with the check's dataset, sizes and devices: what the Snakefile reads in the work folder."""
    config = load_yaml(REPO / "config.yaml")
    (width, height), (rgb_w, rgb_h), (pose_w, pose_h) = args.source, args.rgb, args.pose
    config.update(raw_dir=str(args.work / "raw"), results_dir=str(args.work / results))
    config["split"] = {"heldout_participants": ["P02"]}
    config["video"] = {
        **config["video"],
        "source": {"width": width, "height": height, "fps": 25},
        "clips": {"rgb": {"width": rgb_w, "height": rgb_h}, "pose": {"width": pose_w, "height": pose_h}},
        "decoder": decoder,
        # The CPU decoder's jobs share every core (the reference); the GPU's need threads for x264 only.
        "threads": max(2, -(-args.cores // RECORDINGS)) if decoder == "cpu" else 2,
    }
    # On a GPU the solver runs with its defaults, as on the real recordings; the CPU run keeps the demo's.
    flow = {key: value for key, value in config["flow"].items() if key != "tvl1" or args.device == "cpu"}
    config["flow"] = {**flow, "backend": "torch", "device": args.device}
    config["model"] = {**config["model"], "device": args.device, "heads": ["fc"], "seeds": [0]}
    config["synth"] = {
        **config["synth"],
        "participants": 2,
        "seconds": args.seconds,
        "singles": SINGLES,
        "composites": COMPOSITES,
        "workers": args.cores,
    }
    return validate_config(config, "the GPU check's configuration")


class GpuSampler:
    """The GPU's utilisation, decoder utilisation and memory, sampled through NVML every 0.1 s."""

    def __init__(self) -> None:
        self.samples: list[tuple[int, int, int]] = []
        self.error: str | None = None
        try:
            import pynvml
            import torch

            pynvml.nvmlInit()
            # The GPU PyTorch calls cuda:0, which NVML may number otherwise (CUDA_VISIBLE_DEVICES).
            uuid = f"GPU-{torch.cuda.get_device_properties(0).uuid}"
            self.handle = pynvml.nvmlDeviceGetHandleByUUID(uuid)
            self.nvml = pynvml
        except Exception:  # no NVML (no GPU, or nvidia-ml-py missing): the GPU columns stay empty
            self.handle = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def name(self) -> str | None:
        if not self.handle:
            return None
        name = self.nvml.nvmlDeviceGetName(self.handle)
        return name.decode() if isinstance(name, bytes) else name  # bytes from older nvidia-ml-py

    def memory_used(self) -> int:
        return self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used

    def _sample(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                busy = self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu
                decoder = self.nvml.nvmlDeviceGetDecoderUtilization(self.handle)[0]
                self.samples.append((busy, decoder, self.memory_used()))
            except self.nvml.NVMLError as error:  # e.g. utilisation not reported under MIG
                self.error = str(error)
                return

    def __enter__(self) -> GpuSampler:
        if self.handle:
            self.baseline = self.memory_used()
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle:
            self.stopping.set()
            self.thread.join()

    def summary(self) -> dict[str, float | None]:
        if self.error:
            log.warning("NVML stopped answering (%s): the GPU columns cover part of the stage", self.error)
        if not self.samples:
            return {"gpu_busy": None, "nvdec_busy": None, "gpu_memory_peak_gib": None}
        busy, decoder, memory = zip(*self.samples, strict=True)
        return {
            "gpu_busy": round(sum(busy) / len(busy) / 100, 3),
            "nvdec_busy": round(sum(decoder) / len(decoder) / 100, 3),
            "gpu_memory_peak_gib": round((max(memory) - self.baseline) / 2**30, 2),
        }


@dataclass
class StageResult:
    """One stage's measurements, and its projection on the full dataset.

    A job's time is its start-up (Python, imports, the CUDA context) plus its frames' work. Where
    the stage records each video's own seconds (resize, flow), the two are told apart: the views
    after a job's first pay no start-up, which gives the work per frame, and the rest of the job's
    time is its start-up. The full dataset's jobs hold 4.9 times the frames of the check's (20 s
    recordings against 4 s), so its start-up weighs less. Elsewhere the projection scales the time
    by the frames (the model: by the videos), which counts the start-up in full.
    """

    stage: str
    runs_on: str
    reference: bool
    jobs: int
    videos: int
    frames: int
    wall_s: float  # the jobs' time: the run's less Snakemake's own (snakemake_s)
    snakemake_s: float
    cpu_cores: float
    gpu_busy: float | None
    nvdec_busy: float | None
    gpu_memory_peak_gib: float | None
    startup_s_per_job: float | None = None
    work_s_per_frame: float | None = None
    views: int = 4
    frames_per_s: float = field(init=False)
    projected_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.frames_per_s = round(self.frames / self.wall_s, 1)
        if self.stage == "model":  # it trains and scores per video (epochs x videos)
            scale = FULL_VIDEOS / self.videos
        elif self.startup_s_per_job is None:
            scale = FULL_FRAMES / self.frames
        else:
            full_jobs = FULL_VIDEOS / self.views
            full_job = self.startup_s_per_job + self.work_s_per_frame * FULL_FRAMES / full_jobs
            check_job = self.startup_s_per_job + self.work_s_per_frame * self.frames / self.jobs
            scale = full_jobs * full_job / (self.jobs * check_job)
        self.projected_s = round(self.wall_s * scale)


# The stages whose files record each video's own seconds: the probe sidecars, the flow files.
TIMED_STAGES = ("resize", "flow")


def video_seconds(stage: str, results: Path) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(seconds, frames) of each video's work in `stage`, by (participant, view, label_take)."""
    if stage == "resize":
        return {
            (path.parts[-3], path.parts[-2], path.name.removesuffix(PROBE_SUFFIX)): (
                probe["seconds"],
                probe["source"]["frames"],
            )
            for path, probe in probes(results).items()
        }
    timed = {}
    for path in results.glob("flow/*/*/*.npz"):
        meta = read_flow(path)[2]
        timed[(path.parts[-3], path.parts[-2], path.stem)] = (meta["seconds"], meta["frames"])
    return timed


def job_costs(stage: Stage, results: Path, views: list[str]) -> tuple[int, float | None, float | None]:
    """(jobs, start-up seconds per job, work seconds per frame) of a stage from its jobs' benchmarks
    (those of the rule it runs up to) and, where the stage records them (TIMED_STAGES), its
    videos' own seconds."""
    benchmarks = sorted(results.glob(f"benchmarks/{stage.until}/**/*.tsv")) if stage.until else []
    if stage.name not in TIMED_STAGES or not benchmarks:
        return len(benchmarks), None, None
    timed = video_seconds(stage.name, results)
    later = [timed[key] for key in timed if key[1] != views[0]]
    work = sum(seconds for seconds, _ in later) / sum(frames for _, frames in later)
    startups = []
    for path in benchmarks:
        participant, stem = path.parent.name, path.stem
        job_s = float(path.read_text().splitlines()[1].split("\t")[0])
        frames = sum(timed[(participant, view, stem)][1] for view in views)
        startups.append(max(job_s - work * frames, 0.0))
    return len(benchmarks), round(sum(startups) / len(startups), 3), round(work, 6)


def probes(results: Path) -> dict[Path, dict[str, Any]]:
    """The resize stage's probe sidecars of the check, by path."""
    return {path: read_probe(path) for path in sorted(results.glob(f"clips/*/*/*{PROBE_SUFFIX}"))}


def dataset_size(results: Path) -> tuple[int, int]:
    """(videos, source frames) of the check, from the resize stage's probe sidecars."""
    sidecars = probes(results).values()
    return len(sidecars), sum(probe["source"]["frames"] for probe in sidecars)


def run_stage(stage: Stage, args: argparse.Namespace, gpus: int) -> StageResult:
    """Run the workflow up to `stage`'s rule with the node to itself; measure it."""
    # Every stage but the reference reads the GPU decoder's clips (on a GPU): the same video
    # settings in each run, or Snakemake would resize again.
    decoder = "nvdec" if args.nvdec and not stage.reference else "cpu"
    config = check_config(args, decoder, stage.results)
    workdir = args.work / ("workdir-" + stage.results)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    command = [
        sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
        "--cores", str(args.cores), "--resources", f"gpu={gpus}",
        f"nvdec={gpus * config['video']['nvdec']['sessions_per_gpu']}", "--quiet", "rules",
    ]  # fmt: skip
    if stage.until:
        command += ["--until", stage.until]
    log.info("%s (%s): %s", stage.name, runs_on(stage, config), " ".join(command))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with GpuSampler() as sampler:
        done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise CprCoachError(
            f"the workflow failed in the {stage.name} stage:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}",
            path=workdir,
            fix="read the failed job's log (named above) under its results folder",
        )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    # Snakemake's own time (starting, reading the Snakefile and the samples, building the DAG) is
    # paid once per run, not per frame: timed by the same command with nothing left to do.
    started = time.perf_counter()
    subprocess.run(command, capture_output=True, text=True, check=True)
    workflow = time.perf_counter() - started
    jobs_wall = max(wall - workflow, wall / 10)
    results = Path(config["results_dir"])
    videos, frames = dataset_size(results)
    jobs, startup, work = job_costs(stage, results, config["views"])
    return StageResult(
        stage=stage.name,
        runs_on=runs_on(stage, config),
        reference=stage.reference,
        jobs=jobs,
        startup_s_per_job=startup,
        work_s_per_frame=work,
        views=len(config["views"]),
        videos=videos,
        frames=frames,
        wall_s=round(jobs_wall, 2),
        snakemake_s=round(wall - jobs_wall, 2),
        cpu_cores=round(cpu / wall, 2),
        **sampler.summary(),
    )


def projection(results: list[StageResult]) -> dict[str, Any]:
    """The full dataset's preprocessing on this node: each stage's projection, their sum, the bound."""
    preprocessing = [r for r in results if r.stage in PREPROCESSING and not r.reference]
    bound = max(preprocessing, key=lambda r: r.projected_s)
    total = sum(r.projected_s for r in preprocessing)
    model = next((r.projected_s for r in results if r.stage == "model"), None)
    cpu = next((r for r in results if r.reference), None)
    gpu = next((r for r in results if r.stage == "resize" and r.runs_on.startswith("nvdec")), None)
    speedup = round(gpu.frames_per_s / cpu.frames_per_s, 2) if cpu and gpu else None
    # On the full dataset's longer jobs each job's start-up weighs less, for both decoders.
    projected_speedup = round(cpu.projected_s / gpu.projected_s, 2) if cpu and gpu else None
    return {
        "stages": [r.stage for r in preprocessing],
        "preprocessing_s": total,
        "preprocessing_hours": round(total / 3600, 2),
        "target_hours": TARGET_HOURS,
        "target_met": total / 3600 < TARGET_HOURS,
        "bound_by": bound.stage,
        "model_s": model,
        "nvdec_speedup": speedup,
        "nvdec_speedup_projected": projected_speedup,
        "nvdec_target": TARGET_NVDEC_SPEEDUP,
        "nvdec_target_met": speedup >= TARGET_NVDEC_SPEEDUP if speedup is not None else None,
    }


def hours(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min"


def table(report: dict[str, Any]) -> str:
    """The check as markdown: one row per stage, then the projection."""
    node, proj = report["node"], report["projection"]
    lines = [
        f"GPU node check: {node['gpu'] or 'no GPU'}, {node['cores']} CPU cores, commit {report['commit']};"
        f" {report['check']['videos']} synthetic videos, {report['check']['frames']} frames at"
        f" {report['check']['width']}x{report['check']['height']}",
        "",
        "| stage | runs on | frames/s | wall s | CPU cores | GPU busy | NVDEC busy | GPU mem peak GiB | job start-up s | full CPR-Coach |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["stages"]:

        def cell(value: float | None, percent: bool = False) -> str:
            return "-" if value is None else f"{value:.0%}" if percent else f"{value:g}"

        lines.append(
            f"| {r['stage']} | {r['runs_on']} | {r['frames_per_s']:g} | {r['wall_s']:g} | {r['cpu_cores']:g} |"
            f" {cell(r['gpu_busy'], True)} | {cell(r['nvdec_busy'], True)} | {cell(r['gpu_memory_peak_gib'])} |"
            f" {cell(r['startup_s_per_job'])} | {hours(r['projected_s'])} |"
        )
    verdict = "met" if proj["target_met"] else "NOT met"
    own = [r["snakemake_s"] for r in report["stages"]]
    lines += [
        "",
        f"Wall s is the jobs' time: each run's less Snakemake's own start and DAG ({min(own):g}-{max(own):g} s).",
        f"Projected preprocessing of the full CPR-Coach ({FULL_VIDEOS:,} videos, {FULL_FRAMES:,} frames;"
        f" {', '.join(proj['stages'])}, one after the other): {hours(proj['preprocessing_s'])}"
        f" (target under {TARGET_HOURS:g} h: {verdict}); bound by {proj['bound_by']}.",
    ]
    if proj["model_s"] is not None:
        lines.append(f"The model stage and the reports: {hours(proj['model_s'])} more.")
    if not report["nvdec"]["available"]:
        lines.append(f"No NVDEC row: {report['nvdec']['reason']}.")
    if proj["nvdec_speedup"] is not None:
        verdict = "met" if proj["nvdec_target_met"] else "NOT met"
        lines.append(
            f"NVDEC resize: {proj['nvdec_speedup']:g}x the frames per second of the CPU decoder on all"
            f" {node['cores']} cores (target {TARGET_NVDEC_SPEEDUP:g}x: {verdict});"
            f" {proj['nvdec_speedup_projected']:g}x projected on the full dataset's longer jobs."
        )
    return "\n".join(lines)


def commit() -> str:
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def clear_work(work: Path) -> None:
    """Remove what an earlier check left in `work` (its recordings, results and Snakemake folders):
    a run that found them would measure nothing, or the wrong recordings."""
    work.mkdir(parents=True, exist_ok=True)
    for path in [work / "raw", *work.glob("results*"), *work.glob("workdir-*")]:
        shutil.rmtree(path, ignore_errors=True)


def nvdec_unavailable() -> str | None:
    """Why the GPU decoder cannot run here (PyNvVideoCodec, or the driver's video libraries, missing); None if it can."""
    from cprcoach.video.nvdec import load_pynvvideocodec

    try:
        load_pynvvideocodec()
    except CprCoachError as error:
        return error.message
    return None


def check_node(args: argparse.Namespace) -> dict[str, Any]:
    """Render the recordings, run every stage, and return the report."""
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise CprCoachError(
            "--device cuda, but PyTorch sees no GPU", fix="run on a machine with an NVIDIA GPU, or pass --device cpu"
        )
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    nvdec_missing = nvdec_unavailable() if args.device == "cuda" else "--device cpu"
    args.nvdec = nvdec_missing is None
    if nvdec_missing and args.device == "cuda":
        log.warning("the GPU decoder cannot run here, so every stage reads the CPU decoder's clips: %s", nvdec_missing)
    clear_work(args.work)
    started = time.perf_counter()
    generate_dataset(check_config(args, "cpu", "results"), raw_dir=args.work / "raw")
    log.info("rendered the recordings in %.0f s", time.perf_counter() - started)
    results = [run_stage(stage, args, gpus) for stage in stages(args.nvdec, tuple(args.stages))]
    width, height = args.source
    sampler = GpuSampler()
    report = {
        "format": "cprcoach-gpu-check/1",
        "commit": commit(),
        "node": {"gpu": sampler.name(), "gpus": gpus, "cores": args.cores, "device": args.device},
        "nvdec": {"available": args.nvdec, "reason": nvdec_missing},
        "check": {
            "seconds_per_video": args.seconds,
            "videos": results[0].videos,
            "frames": results[0].frames,
            "width": width,
            "height": height,
        },
        "full_dataset": {"videos": FULL_VIDEOS, "frames": FULL_FRAMES, "width": FULL_SIZE[0], "height": FULL_SIZE[1]},
        "stages": [asdict(r) for r in results],
        "seconds": round(time.perf_counter() - started),
    }
    report["projection"] = projection(results)
    return report


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach gpu-check", description=__doc__)
    parser.add_argument("--work", type=Path, default=Path("/tmp/cprcoach-gpu-check"), help="recordings and results")
    parser.add_argument("--out", type=Path, help="folder for gpu-check.json and gpu-check.md (default: --work)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: the same run without a GPU")
    parser.add_argument(
        "--cores", type=int, default=len(os.sched_getaffinity(0)), help="the node's cores Snakemake may use"
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic recording")
    parser.add_argument("--source", type=parse_size, default=FULL_SIZE, help="recording size (CPR-Coach: 4096x2160)")
    parser.add_argument("--rgb", type=parse_size, default=(340, 256), help="the rgb clip's size")
    parser.add_argument("--pose", type=parse_size, default=(1024, 540), help="the pose clip's size")
    parser.add_argument(
        "--stages",
        nargs="+",
        choices=STAGE_NAMES,
        default=list(STAGE_NAMES),
        help="the first stages only, e.g. resize flow (each needs the ones before it)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    if tuple(args.stages) != STAGE_NAMES[: len(args.stages)]:
        raise CprCoachError(
            f"--stages {' '.join(args.stages)}: each stage reads what the ones before it write",
            fix=f"name the first stages, in order: {' '.join(STAGE_NAMES)}",
        )
    report = check_node(args)
    out = args.out or args.work
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(report)
    (out / "gpu-check.md").write_text(text + "\n")
    print(text)
