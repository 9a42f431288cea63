"""The model alone: size, single-image latency and batch throughput on one CPU core.

    .venv/bin/python bench/model_latency.py [--json out.json] [--quick]     # about 30 seconds
    .venv/bin/python bench/model_latency.py --ops     # + where the shipped models' time goes, by layer

Rows: the shipped model in ONNX Runtime (its own file, the session options the server uses), the
same network in torch, and the original demo's `seed` preset in torch (how the demo served it) and
in ONNX Runtime. One thread, the process pinned to one CPU. Single image: one image per call, as a
web request sees it; median and 99th percentile of many calls after warm-up. Batch: images per
second through calls of --batch images. "CPU ms" and "images/CPU s": the same from the
process's CPU time, equal to the wall-clock figures on a quiet machine and still sound on a busy
one. The torch rows (the shipped model's preset, read from its metadata, and the seed preset) run
with random weights: speed does not depend on the values. Needs the train extra (torch, onnx).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

import benchlib  # noqa: F401  (puts the checkout on sys.path)

import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

from emnist_draw.model import CNN, n_parameters  # noqa: E402
from emnist_draw.recognizer import Recognizer, resolve_model, to_input  # noqa: E402

GOAL_MS = 0.3


def timed_calls(fn: Callable[[], object], calls: int,
                seconds: float) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of up to `calls` calls, stopping after `seconds`; warm-up first.

    CPU time (the process's) is what a call costs when the core is ours alone: on a quiet machine
    it equals the wall time; on a busy one it is the figure that still means something."""
    for _ in range(max(3, min(calls // 20, 50))):
        fn()
    wall: list[float] = []
    cpu: list[float] = []
    deadline = time.perf_counter() + seconds
    while len(wall) < calls and (len(wall) < 5 or time.perf_counter() < deadline):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return wall, cpu


def measure(fn_one: Callable[[], object], fn_batch: Callable[[], object], batch: int,
            calls: int, seconds: float) -> dict:
    single, single_cpu = timed_calls(fn_one, calls, seconds)
    batches, batches_cpu = timed_calls(fn_batch, max(3, calls // batch), seconds)
    return {"single_ms": 1000 * float(np.median(single)),
            "single_p99_ms": 1000 * float(np.percentile(single, 99)),
            "single_cpu_ms": 1000 * float(np.median(single_cpu)), "single_calls": len(single),
            "batch": batch, "batch_images_per_s": batch / float(np.median(batches)),
            "batch_images_per_cpu_s": batch / float(np.median(batches_cpu))}


def torch_fns(model: torch.nn.Module, one: np.ndarray, many: np.ndarray):
    x1, xn = torch.from_numpy(to_input(one)), torch.from_numpy(to_input(many))

    def run(x: torch.Tensor) -> Callable[[], object]:
        def f() -> object:
            with torch.no_grad():
                return model(x)
        return f
    return run(x1), run(xn)


def onnx_fns(session: ort.InferenceSession, one: np.ndarray, many: np.ndarray):
    name = session.get_inputs()[0].name
    f1, fn = {name: to_input(one)}, {name: to_input(many)}
    return (lambda: session.run(None, f1)), (lambda: session.run(None, fn))


def onnx_session(path: Path, profile_prefix: str | None = None) -> ort.InferenceSession:
    """The session options of emnist_draw.recognizer.Recognizer (one thread); with
    profile_prefix, ONNX Runtime's profiler on, writing there."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = profile_prefix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def operator_times(path: Path, image: np.ndarray, calls: int) -> list[tuple[str, str, float]]:
    """(node, operator, microseconds per single-image call), slowest first, from ONNX Runtime's
    own profiler (the optimised graph: fused nodes as the runtime runs them)."""
    with tempfile.TemporaryDirectory() as tmp:
        session = onnx_session(path, str(Path(tmp) / "ops"))
        feed = {session.get_inputs()[0].name: to_input(image)}
        for _ in range(calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    totals: Counter[tuple[str, str]] = Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["name"].removesuffix("_kernel_time"), event["args"]["op_name"]] += event["dur"]
    return [(node, op, us / calls) for (node, op), us in totals.most_common()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="single-image calls (shipped model)")
    parser.add_argument("--seconds", type=float, default=15, help="time limit per measurement")
    parser.add_argument("--batch", type=int, default=256, help="images per call for throughput")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the last)")
    parser.add_argument("--quick", action="store_true", help="few calls: to try the script out")
    parser.add_argument("--ops", action="store_true",
                        help="also time each layer of the shipped models (ONNX Runtime profiler)")
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.seconds = 300, 2
    m = benchlib.machine()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, 28, 28), dtype=np.uint8)
    many = rng.integers(0, 256, (args.batch, 28, 28), dtype=np.uint8)
    seed_batch = min(args.batch, 32)

    rows = []
    shipped = resolve_model()
    recognizer = Recognizer(shipped)  # the server's own session (and its checksum check)
    preset = recognizer.metadata["preset"]
    net = CNN(47, preset).eval()
    name = f"{preset} (shipped)"
    rows.append({"model": name, "runtime": "onnxruntime",
                 "parameters": n_parameters(net), "file_mb": shipped.stat().st_size / 1e6,
                 **measure(*onnx_fns(recognizer.session, one, many), args.batch, args.calls,
                           args.seconds)})
    int8 = Recognizer(f"{recognizer.name}-int8")
    rows.append({"model": f"{preset} int8 (shipped)", "runtime": "onnxruntime",
                 "parameters": n_parameters(net), "file_mb": int8.path.stat().st_size / 1e6,
                 **measure(*onnx_fns(int8.session, one, many), args.batch, args.calls,
                           args.seconds)})
    rows.append({"model": name, "runtime": "torch", "parameters": n_parameters(net),
                 "file_mb": float("nan"),
                 **measure(*torch_fns(net, one, many), args.batch, args.calls, args.seconds)})
    seed = CNN(47, "seed").eval()
    seed_calls = max(20, args.calls // 15)
    rows.append({"model": "seed (original demo)", "runtime": "torch",
                 "parameters": n_parameters(seed), "file_mb": n_parameters(seed) * 4 / 1e6,
                 **measure(*torch_fns(seed, one, many[:seed_batch]), seed_batch, seed_calls,
                           args.seconds)})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(seed, (torch.zeros(1, 1, 28, 28),), str(path), dynamo=False,
                              input_names=["image"], output_names=["logits"], opset_version=17,
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
        rows.append({"model": "seed (original demo)", "runtime": "onnxruntime",
                     "parameters": n_parameters(seed), "file_mb": path.stat().st_size / 1e6,
                     **measure(*onnx_fns(onnx_session(path), one, many[:seed_batch]), seed_batch,
                               seed_calls, args.seconds)})

    by = {(r["model"], r["runtime"]): r for r in rows}
    ref = by["seed (original demo)", "torch"]  # the original demo's way
    for row in rows:
        row["speedup_vs_seed_torch"] = ref["single_ms"] / row["single_ms"]
        row["throughput_vs_seed_torch"] = row["batch_images_per_s"] / ref["batch_images_per_s"]
    shipped_ms = by[name, "onnxruntime"]["single_ms"]
    int8_ms = by[f"{preset} int8 (shipped)", "onnxruntime"]["single_ms"]
    torch_ms = by[name, "torch"]["single_ms"]
    print(benchlib.machine_line(m) + f"; pinned to CPU {cpu}, 1 thread")
    print(benchlib.table(
        "Model alone, one CPU core (ms per single-image call; images/s in batches)",
        ["model", "runtime", "parameters", "file MB", "1 image ms (median)", "p99 ms", "CPU ms",
         "batch", "images/s", "images/CPU s", "x faster than seed/torch (1 image)",
         "x images/s vs seed/torch"],
        [[r["model"], r["runtime"], r["parameters"], r["file_mb"], r["single_ms"],
          r["single_p99_ms"], r["single_cpu_ms"], r["batch"], r["batch_images_per_s"],
          r["batch_images_per_cpu_s"], r["speedup_vs_seed_torch"], r["throughput_vs_seed_torch"]]
         for r in rows]))
    for name, ms in (("shipped model", shipped_ms), ("shipped int8 model", int8_ms)):
        print(f"goal: one image <= {GOAL_MS} ms on one core (ONNX Runtime, {name}): "
              f"{ms:.3f} ms, {'met' if ms <= GOAL_MS else 'NOT met'}")
    print(f"ONNX Runtime is {torch_ms / shipped_ms:.1f}x faster than torch on the shipped model")
    if args.ops:
        for model in (recognizer, int8):
            times = operator_times(model.path, one, min(args.calls, 2000))
            total = sum(us for _, _, us in times)
            print(benchlib.table(
                f"{model.name}: time per layer (ONNX Runtime profiler, one image per call; the "
                f"profiler's own cost included: {total:.0f} us in all)",
                ["node", "operator", "us per image", "share"],
                [[node, op, us, f"{100 * us / total:.0f}%"] for node, op, us in times[:10]]))
    benchlib.write_json(args.json, {"machine": m, "cpu": cpu, "threads": 1, "goal_ms": GOAL_MS,
                                    "rows": rows})


if __name__ == "__main__":
    main()
