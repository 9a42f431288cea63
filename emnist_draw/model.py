"""The CNN: encoder (conv blocks) -> decoder (a transposed conv) -> classifier (three linears).

The shape is the original demo's; presets pick the widths. `seed` is the original demo exactly
(~98M parameters, so its checkpoints load); `medium` is the shipped model's (1.06M, 0.49 ms an
image on one CPU core) and `small` its faster, less accurate predecessor (0.94M, 0.3-0.4 ms).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Preset:
    # Each encoder block: (out_channels, kernel, convs in the block, max-pool after it).
    blocks: tuple[tuple[int, int, int, bool], ...]
    decoder: int  # channels out of the transposed conv
    hidden: tuple[int, int]  # widths of the first two linear layers
    dropout: tuple[float, float, float]  # after encoder blocks / decoder, first linear, second linear


PRESETS = {
    "seed": Preset(blocks=((32, 3, 1, True), (64, 5, 1, False), (128, 7, 1, False)),
                   decoder=64, hidden=(6272, 3136), dropout=(0.25, 0.25, 0.5)),
    "small": Preset(blocks=((32, 3, 1, True), (64, 3, 2, True)),
                    decoder=64, hidden=(256, 128), dropout=(0.1, 0.3, 0.3)),
    # small plus a second full-resolution conv (the strokes' fine detail: L/1, F/f, q/9) and a
    # 128-channel block at 7x7; 1.6x the training step, 1.7x the single-image time.
    "medium": Preset(blocks=((32, 3, 2, True), (64, 3, 2, True), (128, 3, 1, False)),
                     decoder=64, hidden=(256, 128), dropout=(0.1, 0.3, 0.3)),
}


def _encoder_block(c_in: int, c_out: int, kernel: int, n_convs: int, pool: bool,
                   dropout: float) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for i in range(n_convs):
        layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, kernel, padding=kernel // 2),
                   nn.BatchNorm2d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.Dropout(dropout))
    return layers


class CNN(nn.Module):
    def __init__(self, n_classes: int = 47, preset: str = "small"):
        super().__init__()
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
        p = PRESETS[preset]
        self.preset = preset
        layers: list[nn.Module] = []
        c_in, size = 1, 28
        for c_out, kernel, n_convs, pool in p.blocks:
            layers += _encoder_block(c_in, c_out, kernel, n_convs, pool, p.dropout[0])
            c_in, size = c_out, size // 2 if pool else size
        self.encoder = nn.Sequential(*layers)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(c_in, p.decoder, 3, padding=1),
            nn.BatchNorm2d(p.decoder), nn.ReLU(), nn.Dropout(p.dropout[0]),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(p.decoder * size * size, p.hidden[0]), nn.ReLU(), nn.Dropout(p.dropout[1]),
            nn.Linear(p.hidden[0], p.hidden[1]), nn.ReLU(), nn.Dropout(p.dropout[2]),
            nn.Linear(p.hidden[1], n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 1, 28, 28) upright images scaled to [-1, 1]; returns logits."""
        return self.classifier(self.decoder(self.encoder(x)))


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def preset_config(preset: str) -> dict:
    return asdict(PRESETS[preset])
