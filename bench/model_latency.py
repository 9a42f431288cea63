"""Size, parameters and single-image CPU latency: the shipped model vs. the original demo's.

    .venv/bin/python bench/model_latency.py

One thread, one image per call, as a web request sees it; median of many calls after warm-up.
The seed preset runs with random weights: latency does not depend on their values.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from emnist_draw.export import export
from emnist_draw.model import CNN, n_parameters
from emnist_draw.recognizer import Recognizer, resolve_model, to_input


def median_ms(fn, calls: int) -> float:
    for _ in range(max(5, calls // 20)):
        fn()
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(float(np.median(times)) * 1000, 4)


def measure(name: str, model: CNN, onnx_path: Path, calls: int) -> dict:
    image = np.random.default_rng(0).integers(0, 256, (1, 28, 28), dtype=np.uint8)
    x_torch = torch.from_numpy(to_input(image))
    with torch.no_grad():
        torch_ms = median_ms(lambda: model(x_torch), calls)
    recognizer = Recognizer(onnx_path)
    feed = {recognizer.input_name: to_input(image)}
    onnx_ms = median_ms(lambda: recognizer.session.run(None, feed), calls)
    return {"model": name, "parameters": n_parameters(model),
            "onnx_mb": round(onnx_path.stat().st_size / 1e6, 2),
            "torch_ms": torch_ms, "onnxruntime_ms": onnx_ms}


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    shipped = resolve_model()
    small = CNN(47, "small").eval()
    rows.append(measure("small (shipped)", small, shipped, calls=2000))
    with tempfile.TemporaryDirectory() as tmp:
        seed = CNN(47, "seed").eval()
        torch.save({"model_state_dict": seed.state_dict()}, Path(tmp) / "seed.ckpt")
        export(Path(tmp) / "seed.ckpt", Path(tmp) / "seed.onnx", arch="seed")
        rows.append(measure("seed (original demo)", seed, Path(tmp) / "seed.onnx", calls=200))
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
               platform.processor())
    for row in rows:
        print(json.dumps(row))
    print(json.dumps({"ratio_onnx_seed_over_small": round(rows[1]["onnxruntime_ms"] / rows[0]["onnxruntime_ms"], 1),
                      "ratio_size_seed_over_small": round(rows[1]["onnx_mb"] / rows[0]["onnx_mb"], 1),
                      "cpu": cpu, "nproc": os.cpu_count(), "threads": 1}))


if __name__ == "__main__":
    main()
