import json
import os
import signal
import subprocess
import sys

import pytest
import torch

from emnist_draw.train import TrainConfig, augment, native_bf16, resolve_precision, train


def tiny(out, **kw) -> TrainConfig:
    return TrainConfig(out=str(out), limit=2048, val_limit=2000, epochs=2, batch_size=64,
                       threads=1, **kw)


def test_augment_keeps_shape_range_and_ink():
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 8:20, 12:16] = 1  # a bar of ink
    y = augment(x.clone(), torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(x, y)
    ink = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ink.min() > 0.4 and ink.max() < 2.5  # moved, thickened or thinned, never lost


def test_training_learns_and_writes_metrics(tmp_path):
    first = train(tiny(tmp_path / "a"))
    assert len(first["history"]) == 2
    # 2048 images, 2 epochs: far from good, far above chance (1/47).
    assert first["val"]["balanced_accuracy"] > 0.15
    saved = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert saved["val"]["balanced_accuracy"] == first["val"]["balanced_accuracy"]

    # Fine-tuning starts from the trained weights: its first epoch starts where "a" ended.
    tuned = train(TrainConfig(**{**tiny(tmp_path / "ft").__dict__, "epochs": 1,
                                 "init": str(tmp_path / "a" / "last.pt")}))
    assert tuned["history"][0]["train_loss"] < first["history"][0]["train_loss"]
    # A checkpoint of another preset is refused up front, with the flag that fixes it.
    with pytest.raises(ValueError, match="pass --preset small"):
        train(TrainConfig(**{**tiny(tmp_path / "wrong").__dict__, "preset": "medium",
                             "init": str(tmp_path / "a" / "last.pt")}))
    assert not (tmp_path / "wrong").exists()


# Emulated bf16 strays further, and by how much depends on the CPU: measured with this test's
# runs (largest train-loss gap / validation gap), native AVX512-BF16 0.013 / 0.031; on the same
# machine with oneDNN held to AVX-512 without BF16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE) 0.037 / 0.046,
# held to AVX2 0.040 / 0.022; an AVX2-only EPYC (issue 21) 0.096 in loss. A bound that held for
# all of them would not tell bf16 from a bug, so the comparison runs where bf16 is native.
@pytest.mark.skipif(not native_bf16(), reason="no native bf16 on this machine (no avx512_bf16 or "
                    "amx_bf16 in /proc/cpuinfo): oneDNN would emulate it, which rounds differently "
                    "(0.096 apart in loss on an AVX2-only EPYC) and is what `--precision auto` avoids")
def test_bf16_training_follows_the_fp32_run(tmp_path):
    fp32 = train(tiny(tmp_path / "fp32"))
    bf16 = train(tiny(tmp_path / "bf16", precision="bf16"))
    # Same seed, same batches: only the rounding of the convolutions differs, and it does.
    losses = [[h["train_loss"] for h in run["history"]] for run in (fp32, bf16)]
    assert losses[0] != losses[1]
    for a, b in zip(fp32["history"], bf16["history"]):
        assert abs(a["train_loss"] - b["train_loss"]) < 0.05
    assert abs(fp32["val"]["balanced_accuracy"] - bf16["val"]["balanced_accuracy"]) < 0.05
    # The checkpoint is plain fp32, as export and fine-tuning expect.
    state = torch.load(tmp_path / "bf16" / "last.pt", weights_only=True)["model_state_dict"]
    assert all(t.dtype in (torch.float32, torch.int64) for t in state.values())


def test_unknown_precision_is_refused(tmp_path):
    with pytest.raises(ValueError, match="fp32 or bf16"):
        train(tiny(tmp_path / "x", precision="fp16"))


def test_auto_precision_takes_bf16_only_where_it_is_native():
    flags = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw {}\n"
    assert native_bf16(flags.format("avx512_bf16")) == "the CPU has avx512_bf16"
    assert native_bf16(flags.format("amx_tile amx_bf16")) == "the CPU has amx_bf16"
    assert native_bf16(flags.format("")) == ""  # AVX-512 alone: oneDNN would emulate bf16
    assert native_bf16("") == ""
    chosen, why = resolve_precision("auto")
    assert chosen == ("bf16" if native_bf16() else "fp32") and why
    assert resolve_precision("fp32") == ("fp32", "as asked")


def test_training_says_which_precision_it_chose(tmp_path):
    run = subprocess.run(train_command(tmp_path / "auto", 1) + ["--precision", "auto"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    chosen = "bf16" if native_bf16() else "fp32"
    assert f"precision: {chosen} (" in run.stderr
    saved = torch.load(tmp_path / "auto" / "last.pt", weights_only=True)
    assert saved["config"]["precision"] == chosen  # what ran, not "auto"


def train_command(out, epochs: int) -> list[str]:
    return [sys.executable, "-m", "emnist_draw.cli", "train", "--out", str(out), "--limit", "2048",
            "--val-limit", "2000", "--epochs", str(epochs), "--batch-size", "64", "--threads", "1"]


def test_killed_run_resumes_exactly_where_it_stopped(tmp_path):
    straight = subprocess.run(train_command(tmp_path / "straight", 3), capture_output=True,
                              text=True, timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]

    # The same run, killed hard once epoch 2 is saved, then started again with the same command.
    run = subprocess.Popen(train_command(tmp_path / "killed", 3), stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    for line in run.stdout:
        if line.startswith("{") and json.loads(line)["epoch"] == 2:
            run.send_signal(signal.SIGKILL)
            break
    run.wait(timeout=60)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["epoch"] == 2
    resumed = subprocess.run(train_command(tmp_path / "killed", 3), capture_output=True,
                             text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    epochs_run = [json.loads(l)["epoch"] for l in resumed.stdout.splitlines() if l.startswith('{"epoch"')]
    assert epochs_run == [3]

    a = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "last.pt", weights_only=True)
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert all(torch.equal(a["model_state_dict"][k], b["model_state_dict"][k])
               for k in a["model_state_dict"])

    # Resuming under another schedule is refused with a message, not silently mixed.
    other = subprocess.run(train_command(tmp_path / "killed", 5), capture_output=True, text=True)
    assert other.returncode != 0 and "3-epoch run" in other.stderr


def test_two_ddp_processes_under_torchrun(tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "emnist_draw.cli", "train", "--out", str(out), "--limit", "2048", "--val-limit", "2000",
         "--epochs", "2", "--batch-size", "64", "--threads", "1"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["processes"] == 2 and len(metrics["history"]) == 2
    # Each rank saw half of every batch; together they learn as the single process does.
    assert metrics["val"]["balanced_accuracy"] > 0.15
