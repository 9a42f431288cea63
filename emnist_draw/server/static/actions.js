// What the buttons and keys do to the drawing: Undo, Clear, Predict, the mode and the
// character set.

import { S } from "./state.js";
import { pad, ui, STORE, save } from "./dom.js";
import { t, tm } from "./i18n.js";
import { redraw, shrinkPad, sizePad } from "./pad.js";
import { actionButton, setStatus, setStatusActions } from "./status.js";
import { forget, pushEdit, undoLast } from "./history.js";
import { loadChoices, patternOk, saveCharset, saveHint } from "./hints.js";
import { read, showEmpty } from "./reading.js";
import { closeCharPanel } from "./several.js";
import { closeGrid } from "./picker.js";

export function clearPad() {
  S.strokes.length = 0;
  S.current = null;
  S.activePointer = null;
  S.tapStart = null;
  S.drawing++;
  forget();
  shrinkPad();
  clearTimeout(S.liveTimer);
  redraw();
  updateButtons();
  showEmpty("empty");
}

export function undo() {
  const mode = S.mode;
  S.scratched = 0;
  if (!undoLast()) return;
  afterEdit(mode);
}

// After an edit or its Undo: the pad as the strokes are now, read again (or said empty).
export function afterEdit(modeBefore = S.mode) {
  S.drawing++;
  if (S.mode !== modeBefore) {
    save(STORE.mode, S.mode);
    loadChoices();
    showMode();
    sizePad();
  }
  redraw();
  updateButtons();
  if (S.strokes.length === 0) showEmpty("empty");
  else read();
}

export function updateButtons() {
  ui.undo.disabled = S.history.length === 0;
}

// Several characters keeps the ink (a character on the square pad fits the wide one's left end,
// and "switch to Several characters" reads that same ink). Back to one character puts a string
// aside, since it would not fit the square pad and reading it as one character is the mistake;
// Undo (or the status's button) brings it back, in its mode.
export function setMode(next) {
  if (next === S.mode) return;
  const asideString = next === "one" && S.strokes.length > 0;
  if (asideString) pushEdit();
  S.mode = next;
  S.drawing++;
  save(STORE.mode, S.mode);
  loadChoices();
  if (S.mode === "one") {
    shrinkPad();
    S.strokes.length = 0;
    S.current = null;
    S.known = [];
    S.spaces = new Set();
  }
  showMode();
  showEmpty(S.strokes.length ? "reading" : "start");
  updateButtons();
  sizePad();
  if (S.strokes.length) read();
  if (asideString) {
    setStatus("setAside");
    setStatusActions([actionButton("bring-back", t("bringBack"), undo)]);
  }
}

export function showMode() {
  document.body.classList.toggle("several", S.mode === "several");
  ui.modeOne.setAttribute("aria-pressed", String(S.mode === "one"));
  ui.modeSeveral.setAttribute("aria-pressed", String(S.mode === "several"));
  ui.title.textContent = tm("title");
  ui.lede.textContent = tm("lede");
  document.title = `emnist-draw: ${tm("title").toLowerCase()}`;
  pad.setAttribute("aria-label", tm("padLabel"));
  ui.hint.textContent = tm("padHint");
  ui.predict.textContent = tm("predict");  // "Read" for a string: it is no single prediction
  if (S.statusKey) setStatus(S.statusKey);
}

ui.modeOne.addEventListener("click", () => setMode("one"));
ui.modeSeveral.addEventListener("click", () => setMode("several"));
ui.predict.addEventListener("click", () => read(true));
ui.clear.addEventListener("click", clearPad);
ui.undo.addEventListener("click", undo);

ui.charset.addEventListener("change", () => {
  saveCharset();
  S.charsetOnce = null;  // the writer's own choice overrides the one a status offered
  if (S.strokes.length) read();
});

ui.hintSelect.addEventListener("change", () => {
  saveHint();
  if (S.strokes.length) read();
});
// A pattern is read once typed, not at every key: "LL" on the way to "LLDDD" is no hint.
ui.pattern.addEventListener("change", () => {
  saveHint();
  ui.pattern.setAttribute("aria-invalid", String(!patternOk()));
  if (!patternOk()) setStatus(null, { error: true, text: t("patternBad") });
  else if (S.strokes.length) read();
});

document.addEventListener("keydown", (e) => {
  // Esc, Delete and Ctrl+Z belong to the control with focus there: Esc closes a select's list,
  // Delete deletes a typed character, Ctrl+Z undoes typing. None of them may clear the pad.
  if (e.target.closest?.("input, select, textarea")) return;
  if (e.key === "Escape" && !ui.picker.hidden) {  // Escape closes a picker before it clears
    e.preventDefault();
    closeGrid(ui.picker, ui.feedback);
    ui.feedback.focus();
  } else if (e.key === "Escape" && !ui.charPicker.hidden) {
    e.preventDefault();
    closeGrid(ui.charPicker, ui.charOther);
    ui.charOther.focus();
  } else if (e.key === "Escape" && S.openChar !== null) {
    e.preventDefault();
    closeCharPanel(true);
  } else if (e.key === "Escape" || e.key === "Delete") {
    e.preventDefault();
    clearPad();
  } else if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === "z") {
    e.preventDefault();
    undo();
  }
});
