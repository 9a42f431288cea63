"""Training speed per step: one batch through augmentation, forward, loss, backward and AdamW,
in fp32 and in bf16 (`train --precision bf16`), with the tensor layouts `emnist_draw/train.py` uses.

    .venv/bin/python bench/training_step.py [--batch 256] [--steps 30] [--json out.json]   # ~1 min

Random images: speed does not depend on the pixels. All cores (torch's default threads), as
`emnist-draw train` runs. Whole epochs, with validation, are in bench/training_stats.py.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import benchlib  # noqa: F401  (puts the checkout on sys.path)

import torch  # noqa: E402

from emnist_draw.model import CNN  # noqa: E402
from emnist_draw.train import TrainConfig, augment, optimizer_step  # noqa: E402

SETTINGS = {  # name: (memory format, autocast to bf16)
    "fp32, contiguous (before 2026-11-25)": (torch.contiguous_format, False),
    "fp32, channels_last (--precision fp32)": (torch.channels_last, False),
    "bf16, channels_last (--precision bf16)": (torch.channels_last, True),
}


def step_ms(memory_format: torch.memory_format, bf16: bool, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    images = torch.randint(0, 256, (batch, 1, 28, 28), dtype=torch.uint8)
    labels = torch.randint(0, 47, (batch,))
    model = CNN(47, "small").to(memory_format=memory_format)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    cfg = TrainConfig(precision="bf16" if bf16 else "fp32")
    log_prior = torch.zeros(47)  # a uniform prior: the adjustment costs the same either way

    def step() -> None:  # as emnist_draw/train.py's loop does, but for the layout
        x = augment(images.float().div_(255), generator) * 2 - 1
        optimizer_step(model, optimizer, x.contiguous(memory_format=memory_format), labels,
                       log_prior, cfg)

    for _ in range(5):  # warm-up: oneDNN picks and caches its kernels
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append((time.perf_counter() - start) * 1000)
    return benchlib.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    print(benchlib.machine_line(m) + f", torch {torch.__version__}, {torch.get_num_threads()} threads")
    results: dict[str, Any] = {}
    for name, (memory_format, bf16) in SETTINGS.items():
        ms = step_ms(memory_format, bf16, args.batch, args.steps)
        results[name] = {"ms_per_step": round(ms, 1), "images_per_second": round(args.batch / ms * 1000)}
    base = next(iter(results.values()))["ms_per_step"]
    print(benchlib.table(f"One training step, batch {args.batch} (median of {args.steps})",
                         ["setting", "ms per step", "images/s", "speed-up"],
                         [[name, r["ms_per_step"], r["images_per_second"], base / r["ms_per_step"]]
                          for name, r in results.items()]))
    benchlib.write_json(args.json, {"machine": m, "batch": args.batch, "results": results})


if __name__ == "__main__":
    main()
