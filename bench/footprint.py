"""Disk footprint: the serving install (a fresh venv with the base dependencies only) by package,
the shipped model, and the original demo's requirements (torch + its weights).

    .venv/bin/python bench/footprint.py [--json out.json]     # about 1 minute (pip install)
    .venv/bin/python bench/footprint.py --venv /tmp/x         # measure a venv you made yourself
    .venv/bin/python bench/footprint.py --extras postgres     # what the Docker image installs

Does what a user does: `python3 -m venv DIR && DIR/bin/pip install <a fresh clone>` (no extras,
not editable; the checkout's files copied as a clone has them), then `du` on the venv and on
every top-level entry of its site-packages, grouped by the distribution that owns it (from the
installed RECORD files). pip and setuptools are in every venv (and every python image) whatever
is installed; they are shown but also left out of the "serving dependencies" figure. The
reference: torch as installed in this checkout's .venv (with the packages it brings that serving
does not have: sympy, networkx...), the seed preset's weights (float32, from its parameter count),
and torchvision, which cannot be installed here (the only torch wheel this machine may use is the
local CPU build in /opt/wheels, and torchvision from the registry would pull another torch); it
is left out, so the original's figure is a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib

from emnist_draw.recognizer import resolve_model  # noqa: E402

GOAL_INSTALL_MB = 250
GOAL_MODEL_MB = 5
VENV_TOOLING = ("pip", "setuptools", "wheel")
SEED_PARAMETERS = 99_029_295  # CNN(47, "seed"); checked against the model when torch is here

# Run by the measured venv's own python: {distribution: [top-level entries of site-packages]}.
OWNERS = r"""
import importlib.metadata as md, json, sys, sysconfig
site = sysconfig.get_paths()["purelib"]
out = {}
for dist in md.distributions():
    tops = set()
    for f in dist.files or []:
        parts = f.parts
        if parts and parts[0] not in ("..", "") and not str(f).startswith("/"):
            tops.add(parts[0])
    name = dist.metadata["Name"]
    out.setdefault(name, {"version": dist.version, "tops": []})
    out[name]["tops"] = sorted(set(out[name]["tops"]) | tops)
    out[name]["requires"] = [r.split(";")[0].split("[")[0].split(" ")[0].split("=")[0].split(">")[0]
                             .split("<")[0].split("!")[0].split("~")[0].strip()
                             for r in (dist.requires or []) if "extra ==" not in r]
print(json.dumps({"site": site, "dists": out}))
"""


def du_kb(*paths: Path) -> int:
    """Disk usage in KiB, as `du -sk` counts it (hard links once)."""
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return 0
    out = subprocess.run(["du", "-skc", *existing], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1].split()[0])


def packages(python: Path) -> tuple[Path, dict[str, Any]]:
    """(site-packages, {distribution: {version, tops, requires, kb}}) of a venv's python."""
    info = json.loads(subprocess.run([str(python), "-c", OWNERS], capture_output=True, text=True,
                                     check=True).stdout)
    site = Path(info["site"])
    dists = info["dists"]
    owned: set[str] = set()
    for d in dists.values():
        d["kb"] = du_kb(*(site / t for t in d["tops"]))
        owned |= set(d["tops"])
    others = [p for p in site.iterdir() if p.name not in owned]
    if others:
        dists["(not in any RECORD)"] = {"version": "", "tops": [p.name for p in others],
                                        "requires": [], "kb": du_kb(*others)}
    return site, dists


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def closure(dists: dict[str, Any], root: str) -> set[str]:
    """root and everything it requires, transitively (names as installed)."""
    by_key = {norm(k): k for k in dists}
    seen, todo = set(), [root]
    while todo:
        key = by_key.get(norm(todo.pop()))
        if key and key not in seen:
            seen.add(key)
            todo += dists[key]["requires"]
    return seen


def clean_source(dest: Path) -> Path:
    """The checkout's files as a fresh clone has them (tracked, or new and not ignored): setuptools
    packs whatever a leftover build/lib holds into the wheel, such as a model shipped earlier."""
    listed = subprocess.run(["git", "-C", str(benchlib.ROOT), "ls-files", "-z", "--cached",
                             "--others", "--exclude-standard"],
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = benchlib.ROOT / name
        if source.is_file():  # a tracked file deleted in the working tree is not installed
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def make_venv(python: str, where: Path, extras: str = "") -> float:
    started = time.perf_counter()
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    source = clean_source(where.parent / "source")
    target = f"{source}[{extras}]" if extras else str(source)
    subprocess.run([str(where / "bin" / "pip"), "install", "-q", target], check=True)
    return time.perf_counter() - started


def seed_weights_mb() -> tuple[float, str]:
    try:
        from emnist_draw.model import CNN, n_parameters

        return n_parameters(CNN(47, "seed")) * 4 / 1e6, "float32 x parameter count of CNN(47, 'seed')"
    except ImportError:
        return SEED_PARAMETERS * 4 / 1e6, "float32 x 99,029,295 parameters (torch not here to check)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", default="python3", help="the python that makes the venv")
    parser.add_argument("--venv", default=None, help="measure this existing venv instead")
    parser.add_argument("--extras", default="",
                        help="install these extras too (postgres: what the Docker image has)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--json", default=None, metavar="PATH")
    args = parser.parse_args()
    m = benchlib.machine()
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        venv = Path(args.venv) if args.venv else Path(tmp) / "venv"
        install_s = None if args.venv else make_venv(args.python, venv, args.extras)
        total_kb = du_kb(venv)
        site, dists = packages(venv / "bin" / "python")
    tooling_kb = sum(d["kb"] for n, d in dists.items() if n.lower() in VENV_TOOLING)
    serving_kb = sum(d["kb"] for n, d in dists.items() if n.lower() not in VENV_TOOLING)
    top = sorted(dists.items(), key=lambda kv: -kv[1]["kb"])

    model = resolve_model()
    model_mb = model.stat().st_size / 1e6
    meta_kb = model.with_suffix(".json").stat().st_size / 1e3

    ref_site, ref = packages(benchlib.ROOT / ".venv" / "bin" / "python")
    serving = {norm(n) for n in dists}
    torch_only = {n for n in closure(ref, "torch")
                  if norm(n) not in serving and n.lower() not in VENV_TOOLING} | {"torch"}
    torch_kb = ref.get("torch", {}).get("kb", 0)
    torch_deps_kb = sum(ref[n]["kb"] for n in torch_only if n != "torch")
    weights_mb, weights_how = seed_weights_mb()
    original_mb = (torch_kb + torch_deps_kb) / 1024 + weights_mb

    print(benchlib.machine_line(m))
    print(benchlib.table(
        f"Serving install: `python3 -m venv V && V/bin/pip install .{f'[{args.extras}]' if args.extras else ''}` "
        f"({len(dists)} distributions), "
        f"top {args.top} by du",
        ["package", "version", "MiB"],
        [[n, d["version"], d["kb"] / 1024] for n, d in top[:args.top]]
        + [["(the other {})".format(len(top) - args.top), "",
            sum(d["kb"] for _, d in top[args.top:]) / 1024]]))
    mib, mb = 2**20, 1e6
    rows = [["whole venv (du -sk)", total_kb * 1024 / mib, total_kb * 1024 / mb, ""],
            ["site-packages, all distributions", (serving_kb + tooling_kb) * 1024 / mib,
             (serving_kb + tooling_kb) * 1024 / mb, ""],
            ["of which pip + setuptools (in any venv)", tooling_kb * 1024 / mib,
             tooling_kb * 1024 / mb, ""],
            ["serving dependencies (site-packages without pip/setuptools)",
             serving_kb * 1024 / mib, serving_kb * 1024 / mb,
             f"< {GOAL_INSTALL_MB} MB: {'yes' if serving_kb * 1024 / mb < GOAL_INSTALL_MB else 'NO'}"],
            ["shipped model (.onnx)", model_mb * mb / mib, model_mb,
             f"< {GOAL_MODEL_MB} MB: {'yes' if model_mb < GOAL_MODEL_MB else 'NO'}"],
            ["its metadata (.json)", meta_kb * 1e3 / mib, meta_kb / 1e3, ""]]
    print(benchlib.table("Totals (du counts MiB, 2^20 bytes; the goals are in MB, 10^6 bytes)",
                         ["what", "MiB", "MB", "goal"], rows))
    print(benchlib.table(
        "The original demo's requirements (MiB), for comparison",
        ["what", "MiB"],
        [["torch " + ref.get("torch", {}).get("version", "?") + " (installed in .venv)", torch_kb / 1024],
         ["packages only torch brings (" + ", ".join(sorted(torch_only - {"torch"})) + ")",
          torch_deps_kb / 1024],
         ["seed weights (" + weights_how + ")", weights_mb * 1e6 / 2**20],
         ["torchvision", "not installable here (left out)"],
         ["total, at least", original_mb],
         ["ratio: original / serving dependencies + model",
          f"{original_mb / (serving_kb / 1024 + model_mb):.1f} x"]]))
    if install_s is not None:
        print(f"\n(venv made and installed in {install_s:.0f} s)")
    benchlib.write_json(args.json, {
        "machine": m, "venv_total_mb": total_kb / 1024, "tooling_mb": tooling_kb / 1024,
        "serving_mb": serving_kb / 1024, "model_mb": model_mb, "goal_install_mb": GOAL_INSTALL_MB,
        "packages": {n: {"version": d["version"], "mb": d["kb"] / 1024} for n, d in top},
        "reference": {"torch_mb": torch_kb / 1024, "torch_only_deps": sorted(torch_only - {"torch"}),
                      "torch_only_deps_mb": torch_deps_kb / 1024, "seed_weights_mb": weights_mb,
                      "torchvision": "not installable here", "total_mb_at_least": original_mb}})


if __name__ == "__main__":
    main()
