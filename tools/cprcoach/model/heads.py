"""ImagineNet's heads (as in the official release) and the sigmoid baseline (cprcoach.model.registry
names them).

Every head takes k samples at once, (N, k, d) pooled features or (N, k, T', d) token sequences,
and gives 14 logits. Training feeds imagined composites (k = 2 different errors, or 3) and real
single-class videos as a sample paired with itself; testing feeds a real video paired with
itself, so a test input has the form of every training input (see imagine.py).

- fc: the mean of the k pooled features, then the release's classifier: fc1 = Linear(d, d/4),
  Dropout(0.5), ReLU, fc2 = Linear(d/4, 14), with the release's state-dict keys (fc1.weight, fc1.bias,
  fc2.weight, fc2.bias), so its checkpoint loads as it is (load_release_fc). The release adds the
  two features of a pair; for pairs alone the mean is the same up to a factor the first layer
  absorbs, and with triples it keeps every input at one scale: a triple's sum would be 1.5x the
  size of the test input, a video paired with itself (on which the release scores too).
- sa: the k token sequences are joined into one, one Transformer encoder layer (self-attention,
  4 heads) runs over it, mean-pooled, then the fc head's MLP.
- ca: each sample's sequence attends (cross-attention, 4 heads) to the others' sequences, then
  feed-forward as in a Transformer layer; all outputs mean-pooled, then the MLP.
- sigmoid: the fc architecture on one sample (k = 1), the baseline without imagination.
sa and ca add sinusoidal positions to each sequence numbered from 0: the imagined errors happen
during the same time, not one after the other. Both are symmetric in the k samples.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import torch
from torch import nn

from cprcoach.errors import CprCoachError
from cprcoach.model.registry import HEADS

ATTENTION_HEADS = 4
MLP_DROPOUT = 0.5  # the release's
ATTENTION_DROPOUT = 0.1  # a Transformer layer's usual


class MLP(nn.Module):
    """The release's classifier: fc1 = Linear(d, d/4), Dropout(0.5), ReLU, fc2 = Linear(d/4, classes)."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        hidden = max(dim // 4, 1)
        self.fc1 = nn.Linear(dim, hidden)
        self.dropout = nn.Dropout(MLP_DROPOUT)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.dropout(self.fc1(x))))


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """(length, dim) encodings of Vaswani et al.: sin on even channels, cos on odd ones."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class FCHead(MLP):
    """(N, k, d) -> (N, C): mean of the k pooled features, then the MLP (whose keys are the release's)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.mean(dim=1))


def load_release_fc(path: str | Path) -> FCHead:
    """The release's ImagineNet-FC checkpoint (a plain state dict: fc1.weight, fc1.bias, fc2.weight,
    fc2.bias, e.g. ckpt/ST-GCN_ImagineNet_FC/ST-GCN_pre-trained.pth) as our fc head, in eval mode."""
    path = Path(path)
    fix = "pass the release's ImagineNet-FC state dict (ckpt/ST-GCN_ImagineNet_FC/ST-GCN_pre-trained.pth)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as error:
        raise CprCoachError(f"cannot read the checkpoint ({error})", path=path, fix=fix) from None
    expected = {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    if not isinstance(state, dict) or set(state) != expected:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise CprCoachError(f"not an ImagineNet-FC state dict (keys {keys})", path=path, fix=fix)
    hidden, dim = state["fc1.weight"].shape
    classes = state["fc2.weight"].shape[0]
    if hidden != max(dim // 4, 1) or state["fc2.weight"].shape[1] != hidden:
        raise CprCoachError(
            f"fc1 is {dim}->{hidden} and fc2 {state['fc2.weight'].shape[1]}->{classes}: not the d -> d/4 -> C head",
            path=path,
            fix=fix,
        )
    head = FCHead(dim, classes)
    head.load_state_dict(state)
    return head.eval()


class SAHead(nn.Module):
    """(N, k, T', d) -> (N, C): self-attention over the joined sequences, mean-pooled, MLP."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(
            dim, ATTENTION_HEADS, dim_feedforward=2 * dim, dropout=ATTENTION_DROPOUT, batch_first=True
        )
        self.mlp = MLP(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, t, d = x.shape
        x = x + sinusoidal_positions(t, d).to(x.device)
        return self.mlp(self.encoder(x.reshape(n, k * t, d)).mean(dim=1))


class CAHead(nn.Module):
    """(N, k, T', d) -> (N, C): every sample's sequence queries the others', mean-pooled, MLP."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, ATTENTION_HEADS, dropout=ATTENTION_DROPOUT, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.feedforward = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.ReLU(inplace=True), nn.Dropout(ATTENTION_DROPOUT), nn.Linear(2 * dim, dim)
        )
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(ATTENTION_DROPOUT)
        self.mlp = MLP(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, t, d = x.shape
        if k < 2:
            raise ValueError("cross-attention needs at least two samples per input")
        x = x + sinusoidal_positions(t, d).to(x.device)
        outputs = []
        for i in range(k):
            query = x[:, i]
            others = torch.cat([x[:, j] for j in range(k) if j != i], dim=1)
            attended = self.norm1(query + self.dropout(self.attention(query, others, others, need_weights=False)[0]))
            outputs.append(self.norm2(attended + self.dropout(self.feedforward(attended))))
        return self.mlp(torch.cat(outputs, dim=1).mean(dim=1))


def make_head(kind: str, dim: int, num_classes: int) -> nn.Module:
    """A head by name (cprcoach.model.registry.HEADS) for `dim`-channel features."""
    if kind not in HEADS:
        raise ValueError(f"unknown head {kind!r} (expected one of {', '.join(HEADS)})")
    if HEADS[kind].tokens and dim % ATTENTION_HEADS:
        raise CprCoachError(
            f"the {kind} head splits the features over {ATTENTION_HEADS} attention heads; {dim} channels do not divide",
            fix=f"make the backbone's last width (model.skeleton.channels or model.video.channels) a multiple of "
            f"{ATTENTION_HEADS}",
        )
    return HEADS[kind].network(dim, num_classes)
