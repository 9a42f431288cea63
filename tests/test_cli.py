import json
import shutil
import subprocess
import sys

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from emnist_draw.data import load_split
from emnist_draw.recognizer import MODELS_DIR


def test_predict_reads_image_files_either_polarity(data_dir, tmp_path):
    images, labels = load_split(data_dir, "mnist", "test")
    paths = []
    for i in range(20):
        # Dark ink on white, enlarged: what a scan or a screenshot looks like.
        path = tmp_path / f"{i}.png"
        Image.fromarray(255 - images[i] if i % 2 else images[i]).resize((140, 140)).save(path)
        paths.append(str(path))
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "predict", *paths,
                          "--charset", "digits", "--top-k", "3", "--json"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["file"] for a in answers] == paths
    assert all(len(a["top_k"]) == 3 and a["prediction"].isdigit() for a in answers)
    correct = np.mean([a["prediction"] == str(label) for a, label in zip(answers, labels)])
    assert correct >= 0.85
    # Read as digits, these are no look-alikes; a status that says so on the ones read surely.
    assert {a["status"] for a in answers} <= {"ok", "unsure"}
    assert all(a["status"] == "ok" for a in answers if a["top_k"][0]["probability"] > 0.5)

    # For people: a table, a row per file, the same answers.
    table = cli("predict", *paths[:4], "--charset", "digits")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["file", "read", "sure", "status", "then"] and len(lines) == 5
    for line, answer in zip(lines[1:], answers):
        assert line.split()[:2] == [answer["file"], answer["prediction"]]


@pytest.mark.parametrize("command", [["predict", "x.png"], ["read", "x.png"], ["evaluate"],
                                     ["calibrate"]])
def test_a_missing_model_is_one_line_and_status_2(command, tmp_path):
    model = str(tmp_path / "nope.onnx")
    args = command + ([model] if command == ["calibrate"] else ["--model", model])
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", *args], capture_output=True,
                         text=True, cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.startswith("emnist-draw: ") and "no such model file" in out.stderr


def cli(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emnist_draw.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def write_line(path, strokes) -> str:
    """Dark ink on white, as a scan: each stroke a polyline 6 px wide."""
    image = Image.new("L", (300, 80), 255)
    draw = ImageDraw.Draw(image)
    for stroke in strokes:
        draw.line(stroke, fill=0, width=6)
    image.save(path)
    return str(path)


ONE_Z_C = [[(20, 10), (20, 70)], [(60, 10), (100, 10), (60, 70), (100, 70)],
           [(185, 15), (140, 12), (132, 40), (140, 68), (185, 66)]]


@pytest.mark.parametrize("command", ["predict", "read"])
def test_a_file_that_is_no_image_is_one_plain_sentence_naming_it(tmp_path, command):
    (tmp_path / "notes.txt").write_text("not an image")
    good = write_line(tmp_path / "good.png", ONE_Z_C[:1])
    out = cli(command, str(tmp_path / "notes.txt"), str(tmp_path / "missing.png"), good)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.splitlines() == [
        f"emnist-draw: {tmp_path / 'notes.txt'}: not an image: give a PNG, JPEG or WebP file",
        f"emnist-draw: {tmp_path / 'missing.png'}: cannot be read (No such file or directory)"]
    assert "good.png" in out.stdout  # the others are still read


def test_predict_answers_as_the_api_does(tmp_path):
    """A word's image is several characters for the CLI as for the upload (it was "ok", one
    letter at 62%, while the upload said several characters), and a character is one for both."""
    from app_helpers import live_server

    word = write_line(tmp_path / "word.png", ONE_Z_C)
    seven = write_line(tmp_path / "seven.png", [[(120, 10), (180, 10), (140, 75)]])
    out = cli("predict", word, seven, "--json")
    assert out.returncode == 0, out.stderr
    by_cli = [json.loads(line) for line in out.stdout.splitlines()]
    with live_server() as url:
        by_api = []
        for path in (word, seven):
            with open(path, "rb") as f:
                r = httpx.post(f"{url}/api/predict/upload", files={"file": f}, timeout=60)
            assert r.status_code == 200, r.text
            by_api.append(r.json())
    assert [a["status"] for a in by_cli] == [a["status"] for a in by_api]
    assert by_cli[0]["status"] == "several_characters" and by_cli[1]["status"] != by_cli[0]["status"]
    for mine, theirs in zip(by_cli, by_api):
        assert mine["prediction"] == theirs["prediction"]
        assert abs(mine["top_k"][0]["probability"] - theirs["top_k"][0]["probability"]) < 1e-3
    table = cli("predict", word)
    assert "several_characters: `emnist-draw read` reads it" in table.stdout


def test_read_takes_words_and_top_k_and_prints_a_table_or_json(tmp_path):
    line = write_line(tmp_path / "line.png", ONE_Z_C)
    plain = json.loads(cli("read", line, "--json", "--top-k", "2").stdout)
    assert all(len(c["top_k"]) == 2 for c in plain["characters"])
    assert len(plain["characters"]) == 3
    # A word the caller expects wins over a reading about as likely (as the API's `words`).
    runner_up = plain["alternatives"][1]["text"]
    assert plain["text"] != runner_up
    (tmp_path / "words.txt").write_text(f"foo\n{runner_up.lower()}\n")
    for words in (f"bar,{runner_up}", str(tmp_path / "words.txt")):
        hinted = json.loads(cli("read", line, "--json", "--words", words).stdout)
        assert hinted["text"] == runner_up, words
    # For people: the text and its alternatives, then a row per character with its top k.
    out = cli("read", line, "--top-k", "4")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"{line}: {plain['text']}  (or: {runner_up}")
    assert lines[1].split() == ["#", "read", "sure", "status", "then"] and len(lines) == 5
    assert all(line.count("%") == 4 for line in lines[2:])  # the answer and 3 more
    for bad, why in (("--top-k", "0"), ("--top-k", "48"), ("--top-k", "x")):
        refused = cli("read", line, bad, why)
        assert refused.returncode == 2 and "from 1 to 47" in refused.stderr
    refused = cli("read", line, "--words", " , ")
    assert refused.returncode == 2 and "--words holds no words" in refused.stderr


def test_evaluate_prints_a_table_or_json(data_dir, tmp_path):
    from emnist_draw.data import write_idx

    images, labels = load_split(data_dir, "mnist", "test")
    write_idx(tmp_path / "images-idx3-ubyte", images[:300].transpose(0, 2, 1))
    write_idx(tmp_path / "labels-idx1-ubyte", labels[:300])
    args = ["evaluate", "--images", str(tmp_path / "images-idx3-ubyte"), "--labels",
            str(tmp_path / "labels-idx1-ubyte")]
    machine = cli(*args, "--json")
    assert machine.returncode == 0, machine.stderr
    report = json.loads(machine.stdout)
    people = cli(*args)
    assert people.returncode == 0, people.stderr
    text = people.stdout
    assert f"balanced accuracy  {100 * report['balanced_accuracy']:.2f}%" in text
    assert f"images             {report['images']:,} (" in text
    assert "recall per class, lowest first:" in text and not text.lstrip().startswith("{")
    worst = min(report["per_class_recall"].items(), key=lambda kv: kv[1])
    assert text.split("lowest first:\n")[1].split()[:2] == [worst[0], f"{100 * worst[1]:.1f}%"]


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "missing"])
@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_refuses_a_damaged_model_naming_the_file_and_the_fix(tmp_path, damage, workers):
    shipped = MODELS_DIR / "emnist-balanced-medium.onnx"
    model = tmp_path / shipped.name
    shutil.copy(shipped.with_suffix(".json"), model.with_suffix(".json"))
    data = shipped.read_bytes()
    if damage == "truncated":
        model.write_bytes(data[:len(data) // 2])
    elif damage == "corrupt":
        model.write_bytes(data[:1000] + bytes([data[1000] ^ 0xFF]) + data[1001:])
    out = subprocess.run([sys.executable, "-m", "emnist_draw.cli", "serve", "--model", str(model),
                          "--port", "0", "--workers", workers, "--data-dir", str(tmp_path / "data")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    message = out.stderr.strip().splitlines()[-1]
    assert str(model) in message and "Traceback" not in out.stderr
    if damage == "missing":
        assert "no such model file" in message and "emnist-balanced-medium" in message
    else:
        assert "checksum does not match" in message and "reinstall" in message
