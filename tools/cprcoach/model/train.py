"""Training loops: the backbones' (cross-entropy on single classes, the same loop for every network)
and the heads' (BCE on multi-hot targets), and the extraction of a backbone's features.

All run on CPU or CUDA unchanged. Every random draw (weights, batch order, augmentation,
dropout, imagined composites) comes from the run's seed: on CPU the same seed gives the same
model bit for bit; on CUDA, non-deterministic kernels may still change the last digits.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from cprcoach.errors import CprCoachError
from cprcoach.gpu import claim_cuda_device
from cprcoach.model.settings import BackboneTraining, HeadSettings

log = logging.getLogger(__name__)

# One epoch's training examples: member indices (M, k) into the features and their targets (M, C).
Groups = list[tuple[np.ndarray, np.ndarray]]
# Videos per forward pass when a head scores them (memory only: eval mode scores each alone).
PREDICT_BATCH = 256


class Batches(Protocol):
    """One epoch's training batches (inputs, class indices) each time it is iterated, drawing its own
    order and augmentation from the run's seed (cprcoach.model.data: SkeletonBatches, tsn_batches)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def resolve_device(name: str) -> torch.device:
    """model.device as a torch device; CUDA without one is an error. A bare `cuda` claims a GPU no other
    cprcoach job holds (cprcoach.gpu)."""
    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise CprCoachError(
            "model.device is cuda, but PyTorch sees no CUDA device",
            fix="set model.device: cpu in config.yaml, or run on a GPU node",
        )
    return device if device.index is not None else torch.device(claim_cuda_device())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def fit(model: nn.Module, batches: Batches, settings: BackboneTraining, device: torch.device) -> list[dict]:
    """Train a backbone with cross-entropy (label smoothing), AdamW and a one-cycle schedule over
    `settings.epochs` epochs of `batches`; one record per epoch, the model left in eval mode."""
    model.to(device).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * len(batches)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=settings.lr, total_steps=max(steps, 1))
    history = []
    progress = tqdm(range(settings.epochs), desc="backbone", unit="epoch", leave=False)
    for epoch in progress:
        started = time.perf_counter()
        total, correct, count = 0.0, 0, 0
        for x, y in batches:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=settings.label_smoothing)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(y)
            correct += int((logits.argmax(dim=1) == y).sum())
            count += len(y)
        record = {
            "epoch": epoch + 1,
            "loss": total / count,
            "accuracy": correct / count,
            "seconds": time.perf_counter() - started,
        }
        history.append(record)
        progress.set_postfix(loss=f"{record['loss']:.3f}", acc=f"{record['accuracy']:.2f}")
        log.debug("backbone epoch %(epoch)d: loss %(loss).4f, accuracy %(accuracy).3f, %(seconds).1f s", record)
    model.eval()
    return history


@torch.no_grad()
def extract(
    model: nn.Module, inputs: Iterable[torch.Tensor], device: torch.device
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pooled, tokens, logits) of every video of the input batches, in their order, in eval mode."""
    model.to(device).eval()
    parts = [model.features(x.to(device)) for x in inputs]
    pooled, tokens, logits = (torch.cat([p[i] for p in parts]).cpu().numpy() for i in range(3))
    return pooled, tokens, logits


def member_inputs(features: torch.Tensor, members: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Features (N, ...) and member indices (M, k) -> the head's input (M, k, ...)."""
    index = torch.as_tensor(members, dtype=torch.long, device=features.device)
    return features[index.reshape(-1)].reshape(*index.shape, *features.shape[1:])


def fit_head(
    head: nn.Module,
    features: torch.Tensor,
    draw: Callable[[np.random.Generator], Groups],
    settings: HeadSettings,
    seed: int,
) -> list[dict]:
    """Train a head with BCE-with-logits; `draw(rng)` gives each epoch's examples (fresh composites).

    The groups may differ in k (pairs, triples): batches are made within a group and their
    order shuffled across groups.
    """
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
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
def predict_head(head: nn.Module, features: torch.Tensor, copies: int) -> np.ndarray:
    """Sigmoid scores (N, C) of every video, each given to the head as `copies` copies of itself."""
    head.eval()
    members = torch.arange(len(features), device=features.device)[:, None].expand(-1, copies)
    scores = [torch.sigmoid(head(member_inputs(features, chunk))) for chunk in members.split(PREDICT_BATCH)]
    return torch.cat(scores).cpu().numpy()
