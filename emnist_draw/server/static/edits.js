// Edits by tap on a character's box: Delete, Split, Join with the next one, a space after it.
// Each is one entry on the Undo stack. Split and Join make confirmed characters (`known`): the
// parts' labels come from /api/predict, each part read as one character, and stay while the
// rest of the string is re-read.

import { S } from "./state.js";
import { ui } from "./dom.js";
import { t } from "./i18n.js";
import { inkBody } from "./pad.js";
import { describeError, setStatus } from "./status.js";
import { pushEdit } from "./history.js";
import { afterEdit } from "./actions.js";
import { closeCharPanel } from "./several.js";

// The strokes (the pad's own arrays) of character i of the reading on screen.
export function charStrokes(i) {
  return S.reading.answer.characters[i].strokes.map((j) => S.reading.refs[j]);
}

// A confirmed character loses its standing once an edit takes any of its strokes elsewhere.
function unconfirm(strokes) {
  S.known = S.known.filter((k) => !k.strokes.some((s) => strokes.includes(s)));
}

export function deleteChar(i) {
  const gone = charStrokes(i);
  pushEdit();
  unconfirm(gone);
  for (const s of gone) S.spaces.delete(s);
  S.strokes.splice(0, S.strokes.length, ...S.strokes.filter((s) => !gone.includes(s)));
  done();
}

// The space goes with the character's first stroke, so that it stays where the writer put it
// whatever the next reading makes of the rest.
export function spaceAfter(i) {
  pushEdit();
  S.spaces.add(charStrokes(i)[0]);
  done();
}

// Two groups at the widest horizontal gap between the strokes (sorted by their left edge):
// a 1 and a 2 written close become the 1's strokes and the 2's. Null for a single stroke.
export function splitGroups(strokes) {
  if (strokes.length < 2) return null;
  const spans = strokes.map((s) => {
    const xs = s.map(([x]) => x);
    return { s, x0: Math.min(...xs), x1: Math.max(...xs) };
  }).sort((a, b) => a.x0 - b.x0);
  let best = null;
  let right = Infinity;
  for (let k = spans.length - 1; k >= 1; k--) {
    right = Math.min(right, spans[k].x0);
    const left = Math.max(...spans.slice(0, k).map((p) => p.x1));
    const gap = right - left;
    if (!best || gap > best.gap) best = { gap, k };
  }
  return [spans.slice(0, best.k).map((p) => p.s), spans.slice(best.k).map((p) => p.s)];
}

export async function splitChar(i) {
  const groups = splitGroups(charStrokes(i));
  if (groups) await confirmGroups(groups);
}

export async function joinNext(i) {
  await confirmGroups([[...charStrokes(i), ...charStrokes(i + 1)]]);
}

// Each group read as one character, then kept as such: one edit, undone at once.
async function confirmGroups(groups) {
  const drawing = S.drawing;
  let labels;
  try {
    labels = await Promise.all(groups.map(labelOf));
  } catch (err) {
    setStatus(null, { error: true, text: t("error", err.message) });
    return;
  }
  if (drawing !== S.drawing) return;  // the pad changed meanwhile: the groups are stale
  pushEdit();
  unconfirm(groups.flat());
  S.known.push(...groups.map((strokes, n) => ({ strokes, label: labels[n] })));
  done();
}

async function labelOf(strokes) {
  const all = S.strokes;
  S.strokes = strokes;  // inkBody sends the pad's strokes: for a moment, only these
  let body;
  try {
    body = { ...inkBody(), top_k: 1 };
  } finally {
    S.strokes = all;
  }
  delete body.known;
  const res = await fetch("/api/predict", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const answer = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(describeError(answer.detail) || `${res.status} ${res.statusText}`);
  return answer.prediction;
}

function done() {
  closeCharPanel();
  afterEdit();
  ui.chars.focus?.();
}
