// Corrections: one character's (/api/feedback), a string's character by character or typed
// whole (/api/feedback/read, each naming the one it replaces).

import { S } from "./state.js";
import { ui } from "./dom.js";
import { t } from "./i18n.js";
import { describeError } from "./status.js";
import { closeCharPanel, readingText, showReading } from "./several.js";
import { MERGED, closeGrid, gridButtons, openGrid } from "./picker.js";
import { charStrokes } from "./edits.js";

// A merged class (C for C and c) keeps the case the text showed; others are what they are.
export function shownFor(label, before) {
  if (!MERGED.includes(label.toLowerCase())) return label;
  return before === before.toLowerCase() && before !== before.toUpperCase() ? label.toLowerCase() : label;
}

export async function correctChar(i, label) {
  S.reading.shown[i] = shownFor(label, S.reading.shown[i]);
  // Confirmed: sent as `known` with every later read, so that it stays while the rest is re-read.
  const strokes = charStrokes(i);
  S.known = S.known.filter((k) => !k.strokes.some((s) => strokes.includes(s)));
  S.known.push({ strokes, label });
  S.reading.typed = null;
  const focusBack = i;
  closeCharPanel();
  S.reading.again = false;
  showReading();
  ui.fixText.value = readingText().replaceAll("\n", " ");  // one field: lines side by side
  ui.chars.children[focusBack]?.focus();
  await sendRead(readingText(), true);
}

// The whole text, typed: its characters go with the reading's segments when there are as many.
ui.fixForm.addEventListener("submit", (e) => {
  e.preventDefault();
  if (!S.reading) return;
  const text = ui.fixText.value.trim().replace(/\s+/g, " ");
  if (!text || text === readingText().replace(/\s+/g, " ")) {
    S.readShown = { key: "fixSame" };
    showReadFeedbackStatus();
    return;
  }
  const chars = [...text.replace(/ /g, "")];
  const same = chars.length === S.reading.answer.characters.length;
  sendRead(text, same).then((saved) => {
    if (!saved) return;
    // The boxes say the typed characters where they are as many; otherwise what was read.
    if (same) S.reading.shown = chars;
    S.reading.typed = text;
    S.reading.again = false;
    showReading();
  });
});

// One at a time: a character corrected before the previous correction's answer came must name
// that correction in `replaces`, so it waits for its id.
export function sendRead(text, withSegments) {
  const now = S.reading;
  const forDrawing = S.drawing;
  S.readShown = { key: "feedbackSaving" };
  showReadFeedbackStatus();
  const sending = S.readQueue.then(() => postRead(now, forDrawing, text, withSegments));
  S.readQueue = sending.catch(() => {});
  return sending;
}

export async function postRead(now, forDrawing, text, withSegments) {
  const { body, answer } = now;
  const earlier = S.sentRead?.drawing === forDrawing ? S.sentRead : null;
  // The ink as this drawing's first correction sent it: Predict after a rotation reads the same
  // strokes at another scale, and the server replaces only a correction of the very same ink.
  const correction = { strokes: earlier?.strokes ?? body.strokes, canvas: earlier?.canvas ?? body.canvas,
                       charset: body.charset, read: answer.text, text };
  if (withSegments) correction.segments = answer.characters.map((c) => c.strokes);
  if (earlier) correction.replaces = earlier.id;
  let error = null;
  try {
    const res = await fetch("/api/feedback/read", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(correction),
    });
    const reply = await res.json().catch(() => ({}));
    if (res.status === 201) {
      S.sentRead = { drawing: forDrawing, id: reply.id, strokes: correction.strokes, canvas: correction.canvas };
    } else {
      error = describeError(reply.detail) || `${res.status} ${res.statusText}`;
    }
  } catch (err) {
    error = err instanceof TypeError ? t("offline") : err.message;
  }
  if (now !== S.reading) return false;  // the pad changed meanwhile: this status is stale
  S.readShown = error ? { error } : { key: "feedbackSaved" };
  showReadFeedbackStatus();
  return !error;
}

export function showReadFeedbackStatus() {
  const s = S.readShown;
  const el = ui.readFeedbackStatus;
  el.textContent = !s ? "" : s.error ? t("error", s.error) : t(s.key);
  el.classList.toggle("error", Boolean(s?.error));
  el.setAttribute("role", s?.error ? "alert" : "status");
}

// A new reading (or none) starts the correction control afresh: a correction always goes with
// the ink of the reading on screen, exactly the body that was sent to /api/predict.
export function setFeedbackFor(next) {
  S.feedbackFor = next;
  S.feedbackShown = null;
  ui.feedbackBox.hidden = next === null;
  ui.feedback.disabled = false;
  closeGrid(ui.picker, ui.feedback);
  showFeedbackStatus();
}

export function showFeedbackStatus() {
  const s = S.feedbackShown;
  ui.feedbackStatus.textContent = !s ? "" : s.error ? t("error", s.error) : t(s.key);
  ui.feedbackStatus.classList.toggle("error", Boolean(s?.error));
  ui.feedbackStatus.setAttribute("role", s?.error ? "alert" : "status");
}

export async function sendFeedback(label) {
  const correcting = S.feedbackFor;
  if (!correcting) return;
  for (const b of gridButtons(ui.choices)) b.disabled = true;
  S.feedbackShown = { key: "feedbackSaving" };
  showFeedbackStatus();
  let error = null;
  try {
    const res = await fetch("/api/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...correcting.body, label, predicted: correcting.prediction }),
    });
    if (res.status !== 201) {
      const answer = await res.json().catch(() => ({}));
      error = describeError(answer.detail) || `${res.status} ${res.statusText}`;
    }
  } catch (err) {
    error = err instanceof TypeError ? t("offline") : err.message;
  }
  if (correcting !== S.feedbackFor) return;  // the pad changed meanwhile: this status is stale
  S.feedbackShown = error ? { error } : { key: "feedbackSaved" };
  if (error) {
    openGrid(ui.picker, ui.choices, ui.feedback, correcting.prediction);  // choose again, or try again
  } else {
    closeGrid(ui.picker, ui.feedback);
    ui.feedback.disabled = true;  // one correction per reading
  }
  showFeedbackStatus();
}

ui.feedback.addEventListener("click", () => (ui.picker.hidden
  ? openGrid(ui.picker, ui.choices, ui.feedback, S.feedbackFor?.prediction)
  : closeGrid(ui.picker, ui.feedback)));
ui.choices.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && !b.disabled) sendFeedback(b.dataset.label);
});
