"""Training: one process, or several under `torchrun` (DDP: gloo on CPU, nccl on GPU), same code.

The pool has natural class frequencies (digits ~10k images each, some letters ~800) but the score
is balanced accuracy, so the loss is logit-adjusted (Menon et al., 2021): the model learns
logits + log(prior), and its raw logits then estimate the class-balanced posterior. No
re-weighting or post-hoc correction is needed when serving.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from emnist_draw.data import BALANCED_CLASSES, DEFAULT_DATA_DIR, build_pool, load_pair
from emnist_draw.evaluate import classification_report
from emnist_draw.model import CNN, n_parameters
from emnist_draw.recognizer import to_input  # the one definition of the model's input scaling


@dataclass
class TrainConfig:
    out: str = "runs/small"
    preset: str = "small"
    epochs: int = 30
    batch_size: int = 256  # in total, over all processes
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    seed: int = 0
    data_dir: str = str(DEFAULT_DATA_DIR)
    extra: list[str] = field(default_factory=list)  # more idx image files (labels beside them)
    init: str = ""  # start from this checkpoint's weights (fine-tuning); fresh optimizer and schedule
    limit: int = 0  # use only this many training images (tests, quick trials); 0 = all
    val_limit: int = 0  # measure on this many validation images (tests, quick trials); 0 = all
    augment: bool = True
    # bf16: convolutions and linears in bfloat16 (autocast; weights, loss and optimizer in fp32).
    # About 2x the fp32 speed per step on a CPU with AVX512-BF16 (bench/training_step.py); on a
    # CPU without it bf16 is emulated: slower, and it rounds differently. auto: bf16 only where
    # the hardware has it (see native_bf16).
    precision: str = "fp32"
    threads: int = 0  # torch threads per process; 0 = cores / processes


# ------------------------------------------------------------------ augmentation


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random drawing variations on a batch of [0, 1] images (N, 1, 28, 28).

    People draw rotated, slanted, off-centre, too big or too small, with thin or thick pens:
    a random affine map (rotation, shear, scale, shift) and a random stroke thickness change.
    """
    n = x.shape[0]

    def uniform(low: float, high: float) -> torch.Tensor:
        return torch.empty(n).uniform_(low, high, generator=generator)

    angle = uniform(-12, 12) * math.pi / 180
    shear = uniform(-0.25, 0.25)
    scale_x, scale_y = uniform(0.85, 1.12), uniform(0.85, 1.12)
    shift_x, shift_y = uniform(-0.12, 0.12), uniform(-0.12, 0.12)  # in [-1, 1] grid units: ~1.7 px
    cos, sin = torch.cos(angle), torch.sin(angle)
    # theta maps output to input coordinates: (rotation @ shear) / scale, then shift.
    theta = torch.stack([
        torch.stack([cos / scale_x, (cos * shear - sin) / scale_x, shift_x], 1),
        torch.stack([sin / scale_y, (sin * shear + cos) / scale_y, shift_y], 1),
    ], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    # Stroke thickness: blend towards a 3x3 dilation (thicker) or erosion (thinner).
    thicker = F.max_pool2d(x, 3, 1, 1)
    thinner = -F.max_pool2d(-x, 3, 1, 1)
    amount = uniform(-0.4, 0.8).view(n, 1, 1, 1)
    x = torch.where(amount > 0, x + amount * (thicker - x), x - amount * (thinner - x))
    return x.clamp_(0, 1)


# ------------------------------------------------------------------ precision

PRECISIONS = ("fp32", "bf16", "auto")


def native_bf16(cpuinfo: str | None = None) -> str:
    """Why bf16 runs natively here ("" where it does not): a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX-BF16. oneDNN runs bf16 on any AVX-512 CPU, but without these instructions
    it emulates them: slower than fp32, and it rounds differently (tests/test_train.py)."""
    if cpuinfo is None:
        if torch.cuda.is_available():  # training runs there (setup_processes)
            return f"the GPU ({torch.cuda.get_device_name()}) has bf16" \
                if torch.cuda.is_bf16_supported() else ""
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:  # not Linux: no way to tell, so no claim
            return ""
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"the CPU has {' and '.join(native)}" if native else ""


def resolve_precision(precision: str) -> tuple[str, str]:
    """(fp32 or bf16, why) for a --precision value: auto takes bf16 only where it is native."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: fp32 or bf16 (or auto)")
    if precision != "auto":
        return precision, "as asked"
    reason = native_bf16()
    return ("bf16", reason) if reason else (
        "fp32", "no native bf16 here (no avx512_bf16 or amx_bf16 in /proc/cpuinfo, no bf16 GPU)")


# ------------------------------------------------------------------ processes


def setup_processes() -> tuple[int, int, torch.device]:
    """Join the torchrun group if there is one; returns (rank, world size, device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) \
        if torch.cuda.is_available() else torch.device("cpu")
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return dist.get_rank(), world, device
    return 0, 1, device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_training_data(cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    pool = build_pool(cfg.data_dir)
    train_x, train_y = pool.train
    if cfg.limit:
        pick = np.random.default_rng(cfg.seed).permutation(len(train_y))[:cfg.limit]
        train_x, train_y = train_x[pick], train_y[pick]
    for images_path in cfg.extra:
        labels_path = images_path.replace("images-idx3", "labels-idx1")
        extra_x, extra_y = load_pair(images_path, labels_path)
        train_x, train_y = np.concatenate([train_x, extra_x]), np.concatenate([train_y, extra_y])
    val_x, val_y = pool.val
    if cfg.val_limit:
        pick = np.random.default_rng(cfg.seed).permutation(len(val_y))[:cfg.val_limit]
        val_x, val_y = val_x[pick], val_y[pick]
    return train_x, train_y, val_x, val_y


@torch.no_grad()
def predict(model: torch.nn.Module, images: np.ndarray, device: torch.device,
            batch_size: int = 1024) -> np.ndarray:
    """Predicted classes of (N, 28, 28) uint8 upright images."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        batch = torch.from_numpy(to_input(images[i:i + batch_size])).to(device)
        out.append(model(batch).argmax(1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def optimizer_step(net: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
                   y: torch.Tensor, log_prior: torch.Tensor, cfg: TrainConfig) -> torch.Tensor:
    """Forward (in bf16 under autocast if cfg asks), the logit-adjusted loss, backward, one
    optimizer step; returns the loss, detached."""
    with torch.autocast(x.device.type, torch.bfloat16, enabled=cfg.precision == "bf16"):
        logits = net(x)
    loss = F.cross_entropy(logits.float() + log_prior, y, label_smoothing=cfg.label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train(cfg: TrainConfig) -> dict:
    precision, why = resolve_precision(cfg.precision)
    cfg = replace(cfg, precision=precision)  # the checkpoint and metrics record what ran
    init_state = torch.load(cfg.init, map_location="cpu", weights_only=True) if cfg.init else None
    if init_state is not None and init_state.get("preset", cfg.preset) != cfg.preset:
        # Checked before the data loads: a mismatch would otherwise fail minutes later.
        raise ValueError(f"{cfg.init} holds a {init_state['preset']!r} model: "
                         f"pass --preset {init_state['preset']} to fine-tune it")
    rank, world, device = setup_processes()
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // world))
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        print(f"precision: {precision} ({why})", file=sys.stderr, flush=True)

    train_x, train_y, val_x, val_y = load_training_data(cfg)
    n_classes = len(BALANCED_CLASSES)
    prior = np.bincount(train_y, minlength=n_classes) / len(train_y)
    log_prior = torch.tensor(np.log(np.maximum(prior, 1e-8)), dtype=torch.float32, device=device)
    images = torch.from_numpy(train_x)
    labels = torch.from_numpy(train_y)

    # channels_last: oneDNN's fast convolution layout on CPU (and tensor cores' on GPU).
    model = CNN(n_classes, cfg.preset).to(device, memory_format=torch.channels_last)
    if init_state is not None:
        model.load_state_dict(init_state["model_state_dict"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_rank = cfg.batch_size // world
    steps_per_epoch = len(labels) // (per_rank * world)
    if steps_per_epoch < 1:
        raise ValueError(f"{len(labels)} training images are fewer than one batch of {cfg.batch_size}")
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15)

    start_epoch, history = 0, []
    checkpoint_path = out / "last.pt"
    if checkpoint_path.exists():  # resume: the same command picks up where it stopped
        state = torch.load(checkpoint_path, map_location=device, weights_only=True)
        if state["config"]["epochs"] != cfg.epochs:
            raise ValueError(f"{checkpoint_path} belongs to a {state['config']['epochs']}-epoch run "
                             "(its learning-rate schedule too): resume with that --epochs, or "
                             "start afresh with another --out")
        model.load_state_dict(state["model_state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch, history = state["epoch"], state["history"]
        torch.set_rng_state(state["torch_rng"])
    net = DistributedDataParallel(model) if world > 1 else model

    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        model.train()
        # Every rank draws the same permutation and takes its own slice of each batch.
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(cfg.seed + epoch))
        # Seeded per epoch and rank, so a resumed run draws exactly what an unbroken one would.
        aug_generator = torch.Generator().manual_seed((cfg.seed * 1000 + epoch) * 100 + rank)
        total_loss = torch.zeros((), device=device)
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   disable=rank != 0, leave=False, mininterval=2)
        for step in bar:
            batch = order[step * per_rank * world:(step + 1) * per_rank * world][rank::world]
            x = images[batch].unsqueeze(1).float().div_(255)
            if cfg.augment:
                x = augment(x, aug_generator)
            x = (x * 2 - 1).to(device, non_blocking=True, memory_format=torch.channels_last)
            y = labels[batch].to(device, non_blocking=True)
            loss = optimizer_step(net, optimizer, x, y, log_prior, cfg)
            scheduler.step()
            total_loss += loss
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if world > 1:
            dist.all_reduce(total_loss)
        train_loss = total_loss.item() / (steps_per_epoch * world)

        if rank == 0:
            report = classification_report(val_y, predict(model, val_x, device), BALANCED_CLASSES)
            entry = {"epoch": epoch + 1, "train_loss": round(train_loss, 4),
                     "val_balanced_accuracy": report["balanced_accuracy"],
                     "val_accuracy": report["accuracy"], "seconds": round(time.time() - t0, 1),
                     "images_per_second": round(steps_per_epoch * cfg.batch_size / (time.time() - t0))}
            history.append(entry)
            torch.save({"model_state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "epoch": epoch + 1, "history": history,
                        "torch_rng": torch.get_rng_state(), "preset": cfg.preset,
                        "classes": BALANCED_CLASSES, "config": asdict(cfg)},
                       out / "last.pt.tmp")
            os.replace(out / "last.pt.tmp", checkpoint_path)  # a kill mid-save keeps the old one
            print(json.dumps(entry), flush=True)
        if world > 1:
            dist.barrier()

    result = {}
    if rank == 0:
        report = classification_report(val_y, predict(model, val_x, device), BALANCED_CLASSES)
        result = {"preset": cfg.preset, "parameters": n_parameters(model), "config": asdict(cfg),
                  "processes": world,
                  "train_images": int(len(labels)), "val_images": int(len(val_y)),
                  "history": history, "val": report}
        (out / "metrics.json").write_text(json.dumps(result, indent=1))
    if world > 1:
        # The others wait for rank 0's last evaluation: a process that tears its group down while
        # a peer is still busy was seen to abort in gloo ("terminate called without an active
        # exception", once in a CI run).
        dist.barrier()
        dist.destroy_process_group()
    return result
