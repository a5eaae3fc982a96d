"""`cprcoach assess`: the errors of one recording, with the probability of each class.

The recording is a raw video, run through the workflow's preprocessing with the settings of
config.yaml (cprcoach.model.prepare), or with --prepared what the workflow already made of it
for the backbone's modality (pose track, RGB clip or flow). The backbone and, with --head, a
trained ImagineNet head (one sigmoid per class: several errors can be present at once) score
it; without --head the backbone's softmax is used. Errors are the error classes whose
probability reaches model.assess.threshold (--settings, config.yaml's model section).

Where the rescuer's pose track is at hand (the skeleton modality's input; --pose for rgb and
flow; made from a raw recording), the result also holds the compressions measured from it
(cprcoach.coach.measure), and --report writes the coach report (cprcoach.coach.report).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cprcoach.atomic import write_json_atomic
from cprcoach.coach.measure import measure_pose
from cprcoach.coach.report import write_report
from cprcoach.errors import CprCoachError, cli_errors
from cprcoach.logs import setup_logging
from cprcoach.model.checkpoints import load_checkpoint, load_head
from cprcoach.model.imagine import TITLES
from cprcoach.model.prepare import model_input, prepare_recording
from cprcoach.model.registry import BACKBONE_SOFTMAX, HEADS
from cprcoach.model.settings import ModelSettings
from cprcoach.model.train import resolve_device
from cprcoach.settings import add_settings_argument

log = logging.getLogger(__name__)


@torch.no_grad()
def assess_input(
    x: torch.Tensor,
    backbone: torch.nn.Module,
    meta: dict[str, Any],
    head_path: str | Path | None,
    threshold: float,
) -> dict[str, Any]:
    """A backbone input (batch of one) -> each class's probability and the errors found."""
    device = next(backbone.parameters()).device
    pooled, tokens, logits = backbone.features(x.to(device))
    if head_path is None:
        probabilities, method = torch.softmax(logits, dim=1), TITLES[BACKBONE_SOFTMAX]
    else:
        head, head_meta = load_head(head_path, device)
        if list(head_meta["classes"]) != list(meta["classes"]):
            raise CprCoachError(
                "the head was trained with another class table than the backbone",
                path=head_path,
                fix="pass the head trained on this backbone's features",
            )
        inputs = tokens if HEADS[head_meta["kind"]].tokens else pooled
        probabilities = torch.sigmoid(head(inputs[:, None].expand(-1, head_meta["copies"], *inputs.shape[1:])))
        method = TITLES[head_meta["kind"]]
    scores = probabilities[0].cpu().numpy().astype(float)
    classes = [
        {"code": code, "name": name, "probability": round(float(p), 4)}
        for code, name, p in zip(meta["classes"], meta["class_names"], scores, strict=True)
    ]
    correct = meta["classes"][0]  # the class table's index 0 is the correct action
    errors = [c["code"] for c in classes if c["code"] != correct and c["probability"] >= threshold]
    return {
        "modality": meta["modality"],
        "method": method,
        "threshold": threshold,
        "errors": errors,
        "correct": not errors,
        "classes": classes,
    }


def assess_recording(
    recording: str | Path,
    backbone_path: str | Path,
    head_path: str | Path | None = None,
    *,
    prepared: bool = False,
    config: dict[str, Any] | None = None,
    threshold: float,
    device: torch.device | str = "cpu",
    pose: str | Path | None = None,
    report: str | Path | None = None,
) -> dict[str, Any]:
    """Score one recording (raw, preprocessed with `config`; or `prepared` for the backbone's
    modality) and measure its compressions from the rescuer's pose track: the recording itself
    for a prepared skeleton, `pose`, or one made from the raw recording. `report`: write the
    coach report there."""
    recording = Path(recording)
    if not recording.is_file():
        raise CprCoachError("no such recording", path=recording, fix="check the path")
    backbone, meta = load_checkpoint(backbone_path, device)
    skeleton = meta["modality"] == "skeleton"
    if not prepared and config is None:
        raise CprCoachError("a raw recording needs the config its preprocessing follows", fix="pass --config")
    with tempfile.TemporaryDirectory(prefix="cprcoach-assess-") as scratch:
        workdir = Path(scratch)
        if prepared:
            source = recording
        else:  # one resize pass for the backbone's clip and, to measure the compressions, the pose clip
            wanted = [meta["modality"]] + ([] if skeleton or pose is not None else ["skeleton"])
            files = prepare_recording(recording, wanted, config, workdir)
            source, pose = files[meta["modality"]], pose or files.get("skeleton")
        result = {
            "recording": str(recording),
            **assess_input(model_input(source, meta), backbone, meta, head_path, threshold),
        }
        if skeleton:
            pose = source
        if pose is None:
            if report is not None:
                raise CprCoachError(
                    f"the coach report measures the compressions from the rescuer's skeleton; the {meta['modality']}"
                    " modality's input has none",
                    fix="pass --pose with the recording's pose track (results/pose/...npz)",
                )
            return result
        try:
            track, measurements = measure_pose(pose)
        except CprCoachError as error:
            if report is not None:
                raise
            log.warning("the compressions are not measured: %s", error)
            return result
        result["measurements"] = measurements.as_dict()
        if report is not None:
            write_report(report, result, measurements, track, track.meta["clip"]["path"])
            log.info("%s: coach report written to %s", recording, report)
    return result


def format_result(result: dict[str, Any]) -> str:
    width = max(len(c["name"]) for c in result["classes"])
    found = ", ".join(f"{c['name']} ({c['code']})" for c in result["classes"] if c["code"] in result["errors"])
    lines = [
        f"{Path(result['recording']).name}: {found or 'no error found'}"
        f" ({result['method']} on {result['modality']}, threshold {result['threshold']})"
    ]
    for c in result["classes"]:
        mark = "  <-" if c["code"] in result["errors"] else ""
        lines.append(f"  {c['code']}  {c['name']:<{width}}  {c['probability']:.3f}{mark}")
    if "measurements" in result:
        m = result["measurements"]["summary"]

        def shown(value: float | None, fmt: str, unit: str) -> str:
            return "-" if value is None else f"{value:{fmt}}{unit}"

        depth = (
            shown(m["depth_cm"], ".1f", " cm") if m["depth_cm"] is not None else shown(m["depth"], ".0%", " of torso")
        )
        lines.append(
            f"  {m['compressions']} compressions at {shown(m['rate_per_min'], '.0f', ' per minute')}, depth {depth},"
            f" recoil {shown(m['recoil'], '.0%', '')}, elbows {shown(m['elbow_deg'], '.0f', ' deg')}, {m['posture']}"
        )
    return "\n".join(lines)


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="cprcoach assess", description=__doc__)
    parser.add_argument("recording", type=Path, help="raw video, or with --prepared the modality's input")
    parser.add_argument("--backbone", type=Path, required=True, help="checkpoint of `cprcoach model backbone`")
    parser.add_argument("--head", type=Path, help="head of `cprcoach model imagine --checkpoint` (default: softmax)")
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), help="settings of the preprocessing")
    parser.add_argument(
        "--prepared", action="store_true", help="the recording is the pose track, RGB clip or flow the workflow made"
    )
    add_settings_argument(parser, "model")
    parser.add_argument("--pose", type=Path, help="the recording's pose track, to measure its compressions (rgb, flow)")
    parser.add_argument("--report", type=Path, help="write the coach report (self-contained HTML) here")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--out", type=Path, help="write the result here (JSON) instead of printing it")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


@cli_errors
def run(args: argparse.Namespace) -> None:
    setup_logging(args.verbose)
    settings = ModelSettings.from_config(args.settings)
    config = None
    if not args.prepared:
        from cprcoach.config import load_config

        config = load_config(args.config)
    result = assess_recording(
        args.recording,
        args.backbone,
        args.head,
        prepared=args.prepared,
        config=config,
        threshold=settings.assess.threshold,
        device=resolve_device(settings.device),
        pose=args.pose,
        report=args.report,
    )
    if args.out is not None:
        write_json_atomic(args.out, result)
        log.info("%s", format_result(result))
    else:
        print(json.dumps(result, indent=1) if args.json else format_result(result))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry for the top-level `cprcoach assess`."""
    run(build_parser().parse_args(argv))
