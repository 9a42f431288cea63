// One Undo stack for the strokes and every edit made to them: a stroke is undone by taking it
// back; an edit (delete, split, join, a space, a scratch-out, a mode switch that put a string
// aside) by going back to the drawing as it was before it.

import { S } from "./state.js";

const MAX_EDITS = 100;  // edits kept for Undo; strokes are bounded by the API's 100 anyway

// The drawing as an edit may change it: the strokes (the same arrays: no copy of the points),
// the confirmed characters, the spaces and the mode.
function snapshot() {
  return {
    strokes: [...S.strokes],
    known: S.known.map((k) => ({ ...k, strokes: [...k.strokes] })),
    spaces: new Set(S.spaces),
    mode: S.mode,
  };
}

export function pushStroke() {
  S.history.push({ kind: "stroke" });
}

export function pushEdit() {
  S.history.push({ kind: "edit", before: snapshot() });
  if (S.history.length > MAX_EDITS + 100) S.history.shift();
}

// The stroke taken back leaves no confirmed character with part of its ink.
export function dropStroke(stroke) {
  S.known = S.known.filter((k) => !k.strokes.includes(stroke));
  S.spaces.delete(stroke);
}

// Undoes the last entry; false when there is nothing to undo. The caller redraws and reads.
export function undoLast() {
  const last = S.history.pop();
  if (!last) return false;
  if (last.kind === "stroke") {
    dropStroke(S.strokes.pop());
    return true;
  }
  const { strokes, known, spaces, mode } = last.before;
  S.strokes.splice(0, S.strokes.length, ...strokes);
  S.known = known;
  S.spaces = spaces;
  S.mode = mode;
  return true;
}

export function forget() {
  S.history.length = 0;
  S.known = [];
  S.spaces = new Set();
}
