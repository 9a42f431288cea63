"""A model's metadata is checked when it loads: a bad field is one line naming the file and the
field, and exit status 2 from every command that loads a model, before anything is served."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from emnist_draw.recognizer import MODELS_DIR, ModelFileError, Recognizer

SHIPPED = MODELS_DIR / "emnist-balanced-medium"

# What each did before it was checked: "0" for every image with probability null (0, NaN), the
# ranking inverted (-1), every class at 2.1% (1e308), a traceback (null), no file named ("abc").
BAD = {
    "temperature 0": ({"temperature": 0}, '"calibration.temperature"'),
    "temperature NaN": ({"temperature": float("nan")}, '"calibration.temperature"'),
    "temperature Infinity": ({"temperature": float("inf")}, '"calibration.temperature"'),
    "temperature -1": ({"temperature": -1}, '"calibration.temperature"'),
    "temperature 1e308": ({"temperature": 1e308}, '"calibration.temperature"'),
    "temperature 1e-9": ({"temperature": 1e-9}, '"calibration.temperature"'),
    "temperature null": ({"temperature": None}, '"calibration.temperature"'),
    "temperature abc": ({"temperature": "abc"}, '"calibration.temperature"'),
    "temperature true": ({"temperature": True}, '"calibration.temperature"'),
    "temperature missing": ({"fitted_on": "x"}, '"calibration.temperature"'),
    "calibration null": (None, '"calibration"'),
    "calibration 0": (0, '"calibration"'),
    "calibration list": ([0.6], '"calibration"'),
}


def copy_model(tmp_path, **changes):
    """The shipped model beside a copy of its metadata with these top-level fields replaced."""
    shutil.copy(SHIPPED.with_suffix(".onnx"), tmp_path / "m.onnx")
    meta = json.loads(SHIPPED.with_suffix(".json").read_text())
    meta.update(changes)
    (tmp_path / "m.json").write_text(json.dumps(meta))  # NaN and Infinity as json.loads reads them
    return tmp_path / "m.onnx"


@pytest.mark.parametrize("case", BAD)
def test_a_bad_calibration_is_refused_at_load_naming_the_file_and_field(tmp_path, case):
    calibration, field = BAD[case]
    model = copy_model(tmp_path, calibration=calibration)
    with pytest.raises(ModelFileError) as refused:
        Recognizer(model)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'm.json'}: {field} must be") and "\n" not in message


@pytest.mark.parametrize("field, value", [("name", 3), ("onnx_sha256", None), ("parameters", "1"),
                                          ("parameters", 1.5), ("validation", [0.9]),
                                          ("input", "28x28")])
def test_other_fields_of_the_wrong_type_are_refused(tmp_path, field, value):
    with pytest.raises(ModelFileError, match=f'm.json: "{field}" must be an? '):
        Recognizer(copy_model(tmp_path, **{field: value}))


def test_good_temperatures_serve_calibrated_answers(tmp_path):
    image = np.zeros((1, 28, 28), np.uint8)
    image[4:24, 13:15] = 255  # a 1
    shipped = Recognizer()
    for temperature in (0.01, 0.5, 2, 100):
        recognizer = Recognizer(copy_model(tmp_path, calibration={"temperature": temperature}))
        probs = recognizer.probabilities(image)[0]
        assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-5
        assert probs.argmax() == shipped.probabilities(image)[0].argmax()  # the ranking stays
    # A model exported before calibration existed: temperature 1.
    meta = json.loads(SHIPPED.with_suffix(".json").read_text())
    del meta["calibration"]
    (tmp_path / "m.json").write_text(json.dumps(meta))
    assert Recognizer(tmp_path / "m.onnx").temperature == 1.0


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "emnist_draw.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


@pytest.mark.parametrize("command", [["predict", "x.png"], ["read", "x.png"], ["evaluate"],
                                     ["serve", "--port", "0", "--workers", "1"],
                                     ["serve", "--port", "0", "--workers", "2"]])
def test_every_command_exits_2_with_one_line(tmp_path, command):
    model = copy_model(tmp_path, calibration={"temperature": float("nan")})
    out = run_cli(*command, "--model", str(model), *(["--data-dir", str(tmp_path / "data")]
                                                       if command[0] == "serve" else []),
                  cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0] == (
        f'emnist-draw: {tmp_path / "m.json"}: "calibration.temperature" must be a number from '
        f"0.01 to 100, not NaN; run `emnist-draw calibrate {model}` to fit it again")
