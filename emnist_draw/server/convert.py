"""A torch checkpoint (the original demo's, or `emnist-draw train`'s) -> a cached ONNX model.

The export needs torch (the train extra); it runs in a child process so that the process
that goes on to serve never imports torch, and once per checkpoint: the result is cached
under the checkpoint's sha256.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from emnist_draw.download import default_cache_dir
from emnist_draw.recognizer import sha256_file


class ConversionError(RuntimeError):
    """The checkpoint could not be turned into a model; the message says why."""


def cached_model(checkpoint: str | Path, arch: str | None = None,
                 cache_dir: str | Path | None = None, data_dir: str | Path | None = None) -> Path:
    """The .onnx model of `checkpoint`, exporting it on first use.

    data_dir: the EMNIST files, for the parity check and the validation figures in the metadata
    (default: export's own default; a folder without them makes a quicker export on random ink).
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ConversionError(f"{checkpoint}: no such checkpoint file")
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir() / "models"
    out = cache_dir / f"checkpoint-{sha256_file(checkpoint)[:16]}-{arch or 'auto'}.onnx"
    if out.is_file() and out.with_suffix(".json").is_file():
        return out
    if importlib.util.find_spec("torch") is None:
        raise ConversionError("converting a checkpoint needs torch: pip install -e '.[train]' "
                              "(or export it elsewhere with `emnist-draw export` and pass --model)")
    command = [sys.executable, "-m", "emnist_draw.cli", "export", str(checkpoint), "--out", str(out)]
    if arch:
        command += ["--arch", arch]
    if data_dir:
        command += ["--data-dir", str(data_dir)]
    print(f"converting {checkpoint} to {out} (once)", file=sys.stderr)
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        reason = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        raise ConversionError(f"{checkpoint}: export failed: {reason[0]}")
    return out
