"""Training loops: the backbone (cross-entropy on single classes) and the heads (BCE on multi-hot targets).

Both run on CPU or CUDA unchanged. Every random draw (weights, batch order, augmentation,
dropout, imagined composites) comes from the run's seed: on CPU the same seed gives the same
model bit for bit; on CUDA, non-deterministic kernels may still change the last digits.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from cprcoach.errors import CprCoachError
from cprcoach.gpu import claim_cuda_device

log = logging.getLogger(__name__)

# One epoch's training examples: member indices (M, k) into the features and their targets (M, C).
Groups = list[tuple[np.ndarray, np.ndarray]]


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` is CUDA when there is one, else the CPU; asking for CUDA without one is an error.
    A bare `cuda` claims a GPU no other cprcoach job holds (cprcoach.gpu)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise CprCoachError(
            "--device cuda was asked for, but PyTorch sees no CUDA device",
            fix="set model.device: cpu in config.yaml (--device cpu on the command line), or run on a GPU node",
        )
    return device if device.index is not None else torch.device(claim_cuda_device())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


@dataclass
class BackboneSettings:
    epochs: int = 100
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.1
    # Augmentation: a random window of this share of the frames (the network pools over time, so
    # it tests on all of them). It hides the phase of the compressions, which is the same in the 4
    # views of a take and otherwise identifies a training take. No spatial augmentation: scaling,
    # rotating or shifting the skeleton by the usual 10 % moves the joints more than the errors do.
    crop: float = 0.5
    seed: int = 0


@dataclass
class HeadSettings:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # Step decay as in the release: lr * gamma after `step` epochs.
    step: int = 40
    gamma: float = 0.1
    seed: int = 0


def augment(x: torch.Tensor, settings: BackboneSettings, generator: torch.Generator) -> torch.Tensor:
    """(N, 3, T, V) -> (N, 3, T', V): a random window of round(crop * T) frames per video."""
    n, _, t, _ = x.shape
    window = max(1, round(t * settings.crop))
    starts = torch.randint(0, t - window + 1, (n,), generator=generator)
    index = (starts[:, None] + torch.arange(window)[None, :]).to(x.device)
    return torch.gather(x, 2, index[:, None, :, None].expand(-1, x.shape[1], -1, x.shape[3]))


def fit_backbone(
    model: nn.Module, x: np.ndarray, y: np.ndarray, settings: BackboneSettings, device: torch.device
) -> list[dict]:
    """Train on videos x (N, 3, T, V) with class indices y (N,); returns one record per epoch."""
    generator = torch.Generator().manual_seed(settings.seed)
    inputs = torch.from_numpy(np.ascontiguousarray(x)).to(device)
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)
    model.to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * math.ceil(len(x) / settings.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.lr, total_steps=max(steps, 1))
    history = []
    progress = tqdm(range(settings.epochs), desc="backbone", unit="epoch", leave=False)
    for epoch in progress:
        started = time.perf_counter()
        order = torch.randperm(len(x), generator=generator).to(device)
        total, correct = 0.0, 0
        for batch in order.split(settings.batch_size):
            logits = model(augment(inputs[batch], settings, generator))
            loss = F.cross_entropy(logits, targets[batch], label_smoothing=settings.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
            correct += int((logits.argmax(dim=1) == targets[batch]).sum())
        record = {
            "epoch": epoch + 1,
            "loss": total / len(x),
            "accuracy": correct / len(x),
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        progress.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}")
        log.debug("backbone epoch %(epoch)d: loss %(loss).4f, accuracy %(accuracy).3f, %(seconds).1f s", record)
    model.eval()
    return history


def member_inputs(features: torch.Tensor, members: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Features (N, ...) and member indices (M, k) -> the head's input (M, k, ...)."""
    index = torch.as_tensor(members, dtype=torch.long, device=features.device)
    return features[index.reshape(-1)].reshape(*index.shape, *features.shape[1:])


def fit_head(
    head: nn.Module,
    features: torch.Tensor,
    draw: Callable[[np.random.Generator], Groups],
    settings: HeadSettings,
) -> list[dict]:
    """Train a head with BCE-with-logits; `draw(rng)` gives each epoch's examples (fresh composites).

    The groups may differ in k (pairs, triples): batches are made within a group and their
    order shuffled across groups.
    """
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    head.to(features.device).train()
    optimiser = torch.optim.Adam(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=settings.step, gamma=settings.gamma)
    history = []
    progress = tqdm(range(settings.epochs), desc="head", unit="epoch", leave=False)
    for epoch in progress:
        started = time.perf_counter()
        batches = []
        for members, targets in draw(rng):
            order = rng.permutation(len(members))
            batches += [
                (members[chunk], targets[chunk])
                for chunk in np.array_split(order, math.ceil(len(order) / settings.batch_size))
            ]
        total, count = 0.0, 0
        for i in rng.permutation(len(batches)):
            members, targets = batches[i]
            logits = head(member_inputs(features, members))
            loss = F.binary_cross_entropy_with_logits(logits, torch.as_tensor(targets, device=features.device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item() * len(members)
            count += len(members)
        schedule.step()
        history.append({"epoch": epoch + 1, "loss": total / max(count, 1), "seconds": time.perf_counter() - started})
        progress.set_postfix(loss=f"{history[-1]['loss']:.4f}")
    head.eval()
    return history


@torch.no_grad()
def predict_head(head: nn.Module, features: torch.Tensor, copies: int, batch_size: int = 256) -> np.ndarray:
    """Sigmoid scores (N, C) of every video, each given to the head as `copies` copies of itself."""
    head.eval()
    members = torch.arange(len(features), device=features.device)[:, None].expand(-1, copies)
    scores = [torch.sigmoid(head(member_inputs(features, chunk))) for chunk in members.split(batch_size)]
    return torch.cat(scores).cpu().numpy()
