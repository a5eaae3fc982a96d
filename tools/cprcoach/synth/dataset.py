"""`cprcoach synth`: choose the labels, lay out the files, render every video in parallel."""

from __future__ import annotations

import argparse
import concurrent.futures
import logging
import multiprocessing
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from cprcoach.classes import CORRECT, ClassTable, LabelError, load_classes
from cprcoach.config import load_config
from cprcoach.errors import ConfigError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.pose.groundtruth import sidecar_path, write_sidecar
from cprcoach.synth.camera import make_camera, make_rig
from cprcoach.synth.encode import H264Writer
from cprcoach.synth.motion import ERROR_EFFECTS
from cprcoach.synth.render import render_frames
from cprcoach.synth.sidecar import build_sidecar
from cprcoach.synth.take import VideoSpec, simulate

log = logging.getLogger("cprcoach.synth")


def _resolved(table: ClassTable, labels: list[str], kind: str) -> tuple[list[str], list[str]]:
    """Codes of `labels` written with any aliases, and a problem line for each that is not a `kind` class."""
    codes, problems = [], []
    for label in labels:
        try:
            code = table.resolve(label)
        except LabelError as error:
            problems.append(str(error))
            continue
        if table.is_composite(code) != (kind == "composite"):
            problems.append(f"{label!r} is not a {kind} class")
        codes.append(code)
    return codes, problems


def composite_rotation(table: ClassTable, seed: int) -> list[str]:
    """The table's composites in a seeded order in which 2-, 3- and 4-error composites take turns in
    proportion to their numbers, so any run of consecutive entries mixes them as the table does."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x434F4D50]))
    by_order: dict[int, list[str]] = {}
    for code in table.composite_codes:
        by_order.setdefault(table.n_errors(code), []).append(code)
    keyed = []
    for codes in by_order.values():
        shuffled = [codes[i] for i in rng.permutation(len(codes))]
        keyed += [((rank + 0.5) / len(codes), code) for rank, code in enumerate(shuffled)]
    return [code for _, code in sorted(keyed)]


def select_labels(
    table: ClassTable,
    singles: str | list[str],
    composites: str | int | list[str],
    *,
    participant: int = 1,
    seed: int = 0,
) -> list[str]:
    """The classes participant `participant` (1-based) records: synth.singles then synth.composites.

    An integer n of composites gives each participant its own n of the table's composites: the
    next n of composite_rotation, so that the participants together perform every composite as
    soon as n times their number reaches the table's count. Labels may use any alias; they are
    checked against the table and come back as codes.
    """
    chosen_singles, problems = _resolved(table, table.single_codes if singles == "all" else list(singles), "single")
    if composites == "all":
        chosen_composites = table.composite_codes
    elif isinstance(composites, int):
        rotation = composite_rotation(table, seed)
        count = min(composites, len(rotation))
        chosen_composites = [rotation[((participant - 1) * count + i) % len(rotation)] for i in range(count)]
    else:
        chosen_composites, more = _resolved(table, list(composites), "composite")
        problems += more
    if problems:
        raise ConfigError(
            "labels in synth that the generator cannot record:\n    " + "\n    ".join(problems),
            path=table.source,
            fix='use classes of the class table in synth.singles / synth.composites (codes, indices or names), or "all"',
        )
    labels = chosen_singles + chosen_composites
    repeated = sorted({code for code in labels if labels.count(code) > 1})
    if repeated:
        raise ConfigError(
            f"synth lists {', '.join(repeated)} more than once (under different names)",
            path=table.source,
            fix="name each class once in synth.singles and synth.composites",
        )
    unsupported = sorted(
        {f"{e} ({table.single(e).short})" for code in labels for e in table.errors_of(code) if e != CORRECT}
        - {f"{e} ({table.single(e).short})" for e in table.error_codes if table.single(e).short in ERROR_EFFECTS}
    )
    if unsupported:
        raise ConfigError(
            f"the synthetic generator has no physical model for {', '.join(unsupported)}",
            path=table.source,
            fix=f"synthesise only labels made of the errors {', '.join(ERROR_EFFECTS)} (short names)",
        )
    return labels


def video_specs(config: dict[str, Any], raw_dir: str | Path | None = None) -> list[VideoSpec]:
    """Every video of the synthetic dataset, in a fixed order (participant, view, label, take)."""
    synth = config["synth"]
    table = load_classes(config["classes"])
    source = config["video"]["source"]
    width, height, fps = int(source["width"]), int(source["height"]), float(source["fps"])
    views = list(config["views"])
    make_rig(views, width, height)  # reject a view count the rig cannot place, before any work
    frames = max(1, round(float(synth["seconds"]) * fps))
    low, high = (float(v) for v in synth["severity"])
    if low > high:
        raise ConfigError(
            f"synth.severity is [{low:g}, {high:g}]: the mildest bound comes first",
            fix=f"write synth.severity as [{high:g}, {low:g}]",
        )
    root = Path(raw_dir if raw_dir is not None else config["raw_dir"])
    specs = []
    for participant in range(1, int(synth["participants"]) + 1):
        labels = select_labels(
            table, synth["singles"], synth["composites"], participant=participant, seed=int(synth["seed"])
        )
        for view_index, view in enumerate(views):
            for label in labels:
                for take in range(1, int(synth["takes"]) + 1):
                    name = config["raw_pattern"].format(
                        participant=f"P{participant:02d}", view=view, label=label, take=f"{take:02d}"
                    )
                    specs.append(
                        VideoSpec(
                            path=root / name,
                            participant=participant,
                            view=view,
                            view_index=view_index,
                            label=label,
                            errors=tuple(table.errors_of(label)),
                            error_names=tuple(table.single(code).short for code in table.errors_of(label)),
                            multi_hot=tuple(int(v) for v in table.multi_hot(label)),
                            take=take,
                            width=width,
                            height=height,
                            fps=fps,
                            frames=frames,
                            seed=int(synth["seed"]),
                            noise=float(synth["noise"]),
                            severity=(low, high),
                        )
                    )
    return specs


def correct_recording(path: str | Path, width: int, height: int, seconds: float, fps: float = 25.0) -> VideoSpec:
    """One view (the first) of participant 1 performing the correct class: the benchmarks' recording."""
    table = load_classes()
    return VideoSpec(
        path=Path(path),
        participant=1,
        view="V1",
        view_index=0,
        label=CORRECT,
        errors=(CORRECT,),
        error_names=(table.single(CORRECT).short,),
        multi_hot=tuple(int(v) for v in table.multi_hot(CORRECT)),
        take=1,
        width=width,
        height=height,
        fps=fps,
        frames=round(seconds * fps),
        seed=0,
        noise=3.0,
    )


def render_video(spec: VideoSpec) -> Path:
    """Render, encode and write one video, then its sidecar (so a sidecar means a finished video)."""
    take = simulate(spec)
    with H264Writer(spec.path, spec.width, spec.height, spec.fps, crf=spec.crf, preset=spec.preset) as writer:
        for frame in render_frames(spec, take):
            writer.write(frame)
    camera = make_camera(spec.view_index, spec.view, spec.width, spec.height)
    write_sidecar(sidecar_path(spec.path), build_sidecar(spec, take, camera))
    return spec.path


def is_done(spec: VideoSpec) -> bool:
    return spec.path.exists() and sidecar_path(spec.path).exists()


def _init_worker() -> None:
    # One process per video already fills the cores; OpenCV's own threads would only contend.
    cv2.setNumThreads(1)


def generate_dataset(config: dict[str, Any], raw_dir: str | Path | None = None, force: bool = False) -> list[Path]:
    """Render the synthetic dataset described by a validated config; returns every video's path.

    Videos whose .mp4 and .gt.json both exist are kept unless `force`.
    """
    started = time.perf_counter()
    specs = video_specs(config, raw_dir)
    todo = []
    for spec in specs:
        if not force and is_done(spec):
            log.debug("skip %s: video and sidecar exist", spec.path)
        else:
            todo.append(spec)
    skipped = len(specs) - len(todo)
    if skipped:
        log.info("skipping %d of %d videos already rendered (--force re-renders them)", skipped, len(specs))
    workers = min(int(config["synth"]["workers"]), max(1, len(todo)))
    progress = tqdm(total=len(todo), desc="synth", unit="video", disable=not todo)
    try:
        if workers <= 1:
            for spec in todo:
                render_video(spec)
                progress.update()
        else:
            # spawn, not fork: forking a parent that runs threads (tqdm's monitor, a test runner's)
            # can leave a worker blocked forever on a lock copied in the held state.
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker) as pool:
                futures = [pool.submit(render_video, spec) for spec in todo]
                try:
                    for future in concurrent.futures.as_completed(futures):
                        future.result()
                        progress.update()
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        progress.close()
    seconds = time.perf_counter() - started
    per_video = f", {seconds / len(todo):.2f} s per video" if todo else ""
    log.info("wrote %d videos, skipped %d, in %.1f s%s", len(todo), skipped, seconds, per_video)
    return [spec.path for spec in specs]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default="config.yaml", help="config.yaml (its synth:, video.source, views, raw_dir, raw_pattern)"
    )
    parser.add_argument("--raw-dir", help="write here instead of the configured raw_dir")
    parser.add_argument("--force", action="store_true", help="re-render videos that already exist")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    generate_dataset(load_config(args.config), raw_dir=args.raw_dir, force=args.force)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cprcoach synth", description="Render the deterministic synthetic CPR-Coach-like dataset."
    )
    add_arguments(parser)
    return parser


@cli_errors
def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
