// What the writer says the string is (Several characters): any, a number, a word, or a code
// with an optional pattern such as LLDDD. Each mode keeps its own choice (and its own character
// set) across visits; a hint turns into the options /api/read takes.

import { S } from "./state.js";
import { ui, load, save } from "./dom.js";

const HINTS = ["any", "number", "word", "code"];
const key = (what) => `emnist-draw.${what}.${S.mode}`;

// The one-character mode's set keeps the key it always had, so a visitor's choice survives.
const charsetKey = () => (S.mode === "one" ? "emnist-draw.charset" : key("charset"));

export function loadChoices() {
  const charset = load(charsetKey());
  ui.charset.value = [...ui.charset.options].some((o) => o.value === charset) ? charset : "all";
  const hint = load(key("hint"));
  ui.hintSelect.value = HINTS.includes(hint) ? hint : "any";
  ui.pattern.value = load(key("pattern")) ?? "";
  showPattern();
}

export function saveCharset() {
  save(charsetKey(), ui.charset.value);
}

export function saveHint() {
  save(key("hint"), ui.hintSelect.value);
  save(key("pattern"), ui.pattern.value);
  showPattern();
}

function showPattern() {
  ui.pattern.hidden = ui.hintSelect.value !== "code";
}

// The character set a reading is restricted to: a set a status offered for this drawing, the
// hint's (a number is digits, a word letters), else the select's.
export function charsetNow() {
  if (S.charsetOnce) return S.charsetOnce;
  if (S.mode === "several" && ui.hintSelect.value === "number") return "digits";
  if (S.mode === "several" && ui.hintSelect.value === "word") return "letters";
  return ui.charset.value;
}

// /api/read's options for the hint: a code's pattern (the server says what is wrong with a bad
// one); a word is read with the server's own lexicon, which needs nothing sent.
export function readOptions() {
  const pattern = ui.pattern.value.trim();
  return ui.hintSelect.value === "code" && pattern && patternOk() ? { pattern } : {};
}

// The letters a pattern may hold, checked here so that a typo is said at once, by the field.
export function patternOk() {
  return /^[DLdl?]*$/.test(ui.pattern.value.trim());
}
