// Edits of the string: by tap on a character's box (Delete, Split, Join with the next one, a
// space after it) and by pen (scratch-out). Each is one entry on the Undo stack. Split and Join
// send their groups as `known` without a label: the strokes stay one character (or two) while
// the reader reads its class in the string.

import { S } from "./state.js";
import { ui } from "./dom.js";
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

export function splitChar(i) {
  const groups = splitGroups(charStrokes(i));
  if (groups) confirmGroups(groups);
}

export function joinNext(i) {
  confirmGroups([[...charStrokes(i), ...charStrokes(i + 1)]]);
}

// Each group kept as one character with no label: the reader reads its class in the string.
function confirmGroups(groups) {
  pushEdit();
  unconfirm(groups.flat());
  S.known.push(...groups.map((strokes) => ({ strokes, label: null })));
  done();
}

// Scratch-out: /api/read answered which strokes a zigzag erased (the zigzag among them). They
// leave the pad as one edit; Undo brings back the ink as it was before the zigzag, not the
// zigzag itself, which would only erase it again.
export function eraseScratched(refs, erased) {
  const gone = erased.map((j) => refs[j]).filter(Boolean);
  const last = S.strokes[S.strokes.length - 1];
  if (gone.includes(last) && S.history[S.history.length - 1]?.kind === "stroke") {
    S.history.pop();
    S.strokes.pop();
    pushEdit();
    S.strokes.push(last);
  } else {
    pushEdit();
  }
  unconfirm(gone);
  for (const s of gone) S.spaces.delete(s);
  S.strokes.splice(0, S.strokes.length, ...S.strokes.filter((s) => !gone.includes(s)));
  S.scratched = gone.length;
  afterEdit();
}

function done() {
  closeCharPanel();
  afterEdit();
  ui.chars.focus?.();
}
