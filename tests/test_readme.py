"""The README's commands run as written, its links resolve, and its curl example's answer is real.

Nothing long is run: a command is checked through its `--help` (its options must be listed
there) or, for make, through `make -n`.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import urllib.request
from pathlib import Path

import pytest

from app_helpers import live_server

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
HELP_TIMEOUT_S = 60


def code_blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README, flags=re.S | re.M)


def shell_commands() -> list[list[str]]:
    """Every command in the README's sh blocks, continuations joined, comments and VAR=... dropped."""
    commands = []
    for block in code_blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
                words.pop(0)
            if words:
                commands.append(words)
    return commands


COMMANDS = shell_commands()


def run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=HELP_TIMEOUT_S)


def subcommand(words: list[str]) -> list[str]:
    """`emnist-draw data unipen --out x` -> ["data", "unipen"]: the words before the first option
    that name a subcommand (a second level only where the first has one)."""
    sub = [words[1]]
    if words[1] in ("data", "db") and len(words) > 2 and not words[2].startswith("-"):
        sub.append(words[2])
    return sub


def options(words: list[str]) -> list[str]:
    return [w.split("=")[0] for w in words if w.startswith("--")]


@pytest.mark.parametrize("words", COMMANDS, ids=lambda w: " ".join(w)[:60])
def test_readme_command_runs(words: list[str]) -> None:
    program = words[0]
    if program == "make":
        # make -n: the target exists and its recipe expands, nothing runs.
        result = run(["make", "-n", *words[1:]])
        assert result.returncode == 0, result.stderr
    elif program == ".venv/bin/emnist-draw":
        assert (ROOT / program).is_file(), "the README's .venv/bin/emnist-draw is missing: make run"
        result = run([program, *subcommand(words), "--help"])
        assert result.returncode == 0, result.stderr
        for option in options(words):
            assert option in result.stdout, f"{' '.join(words)}: {option} is not an option"
    elif program == ".venv/bin/python":
        script = words[1]
        assert (ROOT / script).is_file(), script
        result = run([program, script, "--help"])
        assert result.returncode == 0, result.stderr
        for option in options(words):
            assert option in result.stdout, f"{' '.join(words)}: {option} is not an option"
    elif program == "docker":
        # Building and running the image is tests/docker's job; here: the files the commands use.
        assert (ROOT / ("compose.yaml" if words[1] == "compose" else "Dockerfile")).is_file()
    elif program == "curl":
        pass  # test_readme_curl_answer_is_real runs it against a live server
    else:
        pytest.fail(f"the README shows a command this test does not check: {' '.join(words)}")


def test_make_run_takes_port_and_host() -> None:
    result = run(["make", "-n", "run", "PORT=8765", "HOST=0.0.0.0"])
    assert "--host 0.0.0.0 --port 8765" in result.stdout, result.stdout
    assert "--host 127.0.0.1 --port 8000" in run(["make", "-n", "run"]).stdout


def test_links_exist() -> None:
    # The README's links, and those of the docs/ pages it sends readers to.
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith("http"):
                assert (page.parent / target).exists(), (page.name, target)


def test_readme_is_short() -> None:
    assert len(README.splitlines()) <= 250


def test_readme_curl_answer_is_real() -> None:
    """The curl example sent to a real server gives the answer the README shows, to its rounding."""
    curl = next(w for w in COMMANDS if w[0] == "curl")
    body = curl[curl.index("-d") + 1]
    shown = json.loads(code_blocks("json")[0])
    digits_shown = re.search(r'With `"charset": "digits"` the same stroke is a "(.)" at (\d\.\d+)',
                             README)
    assert digits_shown, "the README's digits-only sentence changed: update this test"

    def predict(url: str, payload: dict) -> dict:
        request = urllib.request.Request(f"{url}/api/predict", data=json.dumps(payload).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    with live_server() as url:
        answer = predict(url, json.loads(body))
        digits = predict(url, {**json.loads(body), "charset": "digits"})
    assert answer["prediction"] == shown["prediction"]
    assert answer["model"] == shown["model"] and answer["charset"] == shown["charset"]
    assert [(k["label"], k["display"], round(k["probability"], 3)) for k in answer["top_k"]] == \
        [(k["label"], k["display"], k["probability"]) for k in shown["top_k"]]
    assert digits["prediction"] == digits_shown[1]
    assert round(digits["top_k"][0]["probability"], 3) == float(digits_shown[2])
