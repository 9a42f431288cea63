"""Writing on several lines: rows found from real writers' ink, read line by line, by the engine
and by `POST /api/read` on a real server; one line reads exactly as before."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from emnist_draw import lines
from emnist_draw.lines import read_lines, split_rows, stroke_boxes
from emnist_draw.server.schemas import MAX_LINES
from emnist_draw.unipen import compose, load_written

from app_helpers import live_server
from test_reader import written


def stacked(recognizer, rows: list[str], spacing: float = 1.4, indent: float = 10.0):
    """Real characters written row under row (cap height 100, `spacing` cap heights from line
    to line, each row a little further right); strokes in writing order and each row's."""
    strokes, owners = [], []
    for n, text in enumerate(rows):
        row, _ = compose(written(recognizer, text))
        owners.append(list(range(len(strokes), len(strokes) + len(row))))
        strokes += [[[x + n * indent, y + n * spacing * 100] for x, y in s] for s in row]
    return strokes, owners


@pytest.mark.parametrize("spacing", [1.15, 1.4, 2.0])
def test_a_number_written_above_another_is_two_rows(recognizer, spacing):
    strokes, owners = stacked(recognizer, ["123", "456"], spacing)
    assert split_rows(stroke_boxes(strokes)) == owners


def test_two_lines_are_read_line_by_line(reader, recognizer):
    strokes, owners = stacked(recognizer, ["123", "456"])
    assert "123" not in reader.read_strokes(strokes).text  # as one line: interleaved
    read = read_lines(reader, strokes)
    assert read.reading.text == "123\n456"
    assert [line.text for line in read.lines] == ["123", "456"]
    assert [line.strokes for line in read.lines] == owners
    assert [line.characters for line in read.lines] == [[0, 1, 2], [3, 4, 5]]
    # Character strokes are indices into all the strokes, not into the line's.
    for line, row in zip(read.lines, owners):
        assert all(set(read.reading.characters[i].parts) <= set(row) for i in line.characters)
    assert read.reading.alternatives[0][0] == "123\n456"
    assert all(text.count("\n") == 1 for text, _ in read.reading.alternatives)
    # Strokes written out of order (the second line first) read the same.
    order = owners[1] + owners[0]
    again = read_lines(reader, [strokes[k] for k in order])
    assert again.reading.text == "123\n456"


def test_three_lines_with_a_word_and_per_line_patterns(reader, recognizer):
    strokes, owners = stacked(recognizer, ["AB", "12", "ab"])
    read = read_lines(reader, strokes, pattern="LL\nDD\nLL")
    assert read.reading.text.split("\n")[1] == "12" and len(read.lines) == 3
    with pytest.raises(ValueError, match="3 lines and the pattern has 1"):
        read_lines(reader, strokes, pattern="LLDDLL")


def test_one_line_reads_exactly_as_before(reader, recognizer):
    for text in ("2024", "AB12C", "Sun"):
        strokes, _ = compose(written(recognizer, text))
        alone, read = reader.read_strokes(strokes), read_lines(reader, strokes)
        assert (read.reading.text, read.reading.alternatives) == (alone.text, alone.alternatives)
        assert [c.parts for c in read.reading.characters] == [c.parts for c in alone.characters]
        assert len(read.lines) == 1 and read.lines[0].text == alone.text


def test_single_line_strings_of_unseen_writers_are_one_row():
    """Words, numbers and lines of text written on one line by the measure writers (a third of
    them): how many would be split into rows. Measured 20 of 25,829 (0.08%; tune writers 0.13%)."""
    samples = load_written("measure")[::3]
    split = [s.text for s in samples if len(split_rows(stroke_boxes(s.strokes))) > 1]
    assert len(samples) > 8000 and len(split) / len(samples) < 0.002, split[:20]


def test_a_confirmed_character_stays_in_one_row(recognizer):
    strokes, owners = stacked(recognizer, ["123", "456"])
    across = [owners[0][0], owners[1][0]]  # the writer says the 1 and the 4 are one character
    rows = split_rows(stroke_boxes(strokes), together=[across])
    assert any(set(across) <= set(row) for row in rows)


def test_the_limit_on_lines(reader, recognizer):
    assert lines.MAX_LINES == MAX_LINES
    strokes, _ = stacked(recognizer, ["1"] * (MAX_LINES + 1), indent=0)
    assert len(split_rows(stroke_boxes(strokes))) == MAX_LINES + 1
    with pytest.raises(ValueError, match=f"on {MAX_LINES + 1} lines; at most {MAX_LINES}"):
        read_lines(reader, strokes)


# ---------------------------------------------------------------- the API

@pytest.fixture(scope="module")
def client():
    with live_server() as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def test_api_reads_two_lines(client, recognizer):
    strokes, owners = stacked(recognizer, ["123", "456"])
    r = client.post("/api/read", json={"strokes": strokes, "pattern": "DDD\nDDD"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == "123\n456"
    assert [line["text"] for line in body["lines"]] == ["123", "456"]
    assert [line["strokes"] for line in body["lines"]] == owners
    for line in body["lines"]:
        chars = [body["characters"][i] for i in line["characters"]]
        assert "".join(c["display"] for c in chars) == line["text"]
        assert all(set(c["strokes"]) <= set(line["strokes"]) for c in chars)
        ink = np.concatenate([np.asarray(strokes[k]) for k in line["strokes"]])
        assert line["box"] == pytest.approx([*ink.min(0), *ink.max(0)])
    one = client.post("/api/read", json={"strokes": strokes[:owners[1][0]]}).json()
    assert one["text"] == "123" and len(one["lines"]) == 1
    assert one["lines"][0]["characters"] == [0, 1, 2]


@pytest.mark.parametrize("pattern, needle", [
    ("DDDDDD", "2 lines and the pattern has 1"),
    ("DDD\nDDD\nDDD", "2 lines and the pattern has 3"),
    ("DDD\n", "pattern"),
])
def test_api_refuses_a_pattern_that_does_not_fit_the_lines(client, recognizer, pattern, needle):
    strokes, _ = stacked(recognizer, ["123", "456"])
    r = client.post("/api/read", json={"strokes": strokes, "pattern": pattern})
    assert r.status_code == 422 and needle in r.text, r.text


def test_api_refuses_too_many_lines(client, recognizer):
    strokes, _ = stacked(recognizer, ["1"] * (MAX_LINES + 1), indent=0)
    r = client.post("/api/read", json={"strokes": strokes})
    assert r.status_code == 422 and f"at most {MAX_LINES}" in r.json()["detail"], r.text


def test_numbers_of_unseen_writers_stacked_read_as_each_line_alone(reader):
    """120 printed numbers of the measure writers, in pairs one above the other (each scaled to
    100 high, lines 140 apart): every pair's rows are found, and the pair reads exactly as its
    two lines read alone (measured: rows 60 of 60; exact 50 of 60, alone 50; as one line 0)."""
    numbers = [s for s in load_written("measure") if s.printed and s.kind == "number"][:120]

    def scaled(strokes, dy):
        points = np.concatenate([np.asarray(s, float) for s in strokes])
        low, high = points.min(0), points.max(0)
        k = 100 / max(high[1] - low[1], 1e-9)
        return [((np.asarray(s, float) - low) * k + [0, dy]).tolist() for s in strokes]

    rows = exact = alone = 0
    for a, b in zip(numbers[::2], numbers[1::2]):
        top, bottom = scaled(a.strokes, 0), scaled(b.strokes, 140)
        strokes = top + bottom
        rows += split_rows(stroke_boxes(strokes)) == [list(range(len(top))),
                                                      list(range(len(top), len(strokes)))]
        truth = a.text.replace(" ", "") + "\n" + b.text.replace(" ", "")
        read = read_lines(reader, strokes, charset="digits").reading.text
        exact += read.replace(" ", "") == truth
        alone += "\n".join(reader.read_strokes(s, charset="digits").text.replace(" ", "")
                           for s in (top, bottom)) == truth
    assert rows == 60 and exact >= alone >= 45
