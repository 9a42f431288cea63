// Several characters: /api/read's answer as a text and a box over each character; a tapped
// box shows its alternatives.

import { S } from "./state.js";
import { pad, ui } from "./dom.js";
import { t, percent } from "./i18n.js";
import { inkBody } from "./pad.js";
import { setStatus, setStatusActions } from "./status.js";
import { ask } from "./reading.js";
import { TOP_K } from "./one.js";
import { correctChar, showReadFeedbackStatus } from "./corrections.js";
import { closeGrid, openGrid } from "./picker.js";
import { deleteChar, eraseScratched, joinNext, spaceAfter, splitChar } from "./edits.js";

export async function readString(again) {
  const body = { ...inkBody(), top_k: TOP_K, alternatives: 5 };
  const refs = [...S.strokes];  // the answer's stroke indices are into these, whatever comes next
  const answer = await ask("/api/read", body);
  if (!answer) return;
  if (answer.erased?.length) {
    eraseScratched(refs, answer.erased);  // and reads what is left
    return;
  }
  setReading({ body, refs, answer, shown: answer.characters.map((c) => c.display), again });
}

// A new reading (or none): its text, a box per character, and the corrections start afresh.
export function setReading(next) {
  S.reading = next;
  S.readShown = null;
  closeCharPanel();
  ui.fixForm.hidden = next === null;
  if (next) ui.fixText.value = readingText().replaceAll("\n", " ");  // one field: lines side by side
  showReadFeedbackStatus();
  showReading();
}

// The text as shown now: read, corrected one character at a time, or typed whole; with the
// spaces the writer inserted.
export function readingText() {
  if (S.reading.typed) return S.reading.typed;
  const { answer, refs, shown } = S.reading;
  const text = [...answer.text];
  let i = 0;
  return text.map((ch, at) => {
    if (ch === " " || ch === "\n") return ch;
    const first = refs[answer.characters[i].strokes?.[0]];
    const spaced = S.spaces.has(first) && at + 1 < text.length && !/\s/.test(text[at + 1]);
    return shown[i++] + (spaced ? " " : "");
  }).join("");
}

export function showReading() {
  ui.copy.disabled = !S.reading;
  if (!S.reading) {
    ui.text.textContent = "";
    ui.chars.replaceChildren();
    return;
  }
  const { answer, again } = S.reading;
  const text = readingText();
  ui.text.textContent = text;
  const n = answer.characters.length;
  ui.chars.replaceChildren(...answer.characters.map((c, i) => charButton(c, i, n)));
  placeChars();
  const doubts = answer.characters.filter((c) => (c.status ?? "ok") !== "ok").length;
  let status = n ? t("readText", n) : t("nothingRead");
  if (S.scratched) status = `${t("scratched", S.scratched)} · ${status}`;
  if (doubts) status = `${status}. ${t("doubts", doubts)}`;
  if (again) status = `${t("again", text)} · ${status}`;
  setStatus(null, { text: status, flash: again });
  setStatusActions([]);
}

export function charButton(character, i, n) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "char";
  b.dataset.testid = "char";
  b.dataset.index = i;
  const sure = (character.status ?? "ok") === "ok";
  b.classList.toggle("doubt", !sure);
  // Confirmed by the writer (a correction kept): solid green, and said so.
  if (character.known) b.classList.add("known");
  b.setAttribute("aria-label", t("charLabel", i + 1, n,
                                 S.reading.shown[i] + (character.known ? t("confirmed") : ""), sure));
  b.setAttribute("aria-expanded", String(S.openChar === i));
  b.setAttribute("aria-controls", "char-panel");
  const label = document.createElement("span");
  label.className = "char-label";
  label.textContent = S.reading.shown[i];
  b.append(label);
  return b;
}

// The boxes come in the request's CSS pixels; the pad may have been resized since.
export function placeChars() {
  if (!S.reading) return;
  const scale = pad.getBoundingClientRect().height / S.reading.body.canvas.height;
  const margin = 3;  // px around the ink, so a thin 1 is still a target
  ui.chars.querySelectorAll(".char").forEach((b) => {
    const [x0, y0, x1, y1] = S.reading.answer.characters[b.dataset.index].box.map((v) => v * scale);
    const w = Math.max(24, x1 - x0 + 2 * margin);
    const h = Math.max(24, y1 - y0 + 2 * margin);
    b.style.left = `${(x0 + x1) / 2 - w / 2}px`;
    b.style.top = `${(y0 + y1) / 2 - h / 2}px`;
    b.style.width = `${w}px`;
    b.style.height = `${h}px`;
    // The label sits above the box, or below it where the box touches the pad's top.
    b.classList.toggle("label-below", (y0 + y1) / 2 - h / 2 < 22);
  });
}

ui.chars.addEventListener("click", (e) => {
  const b = e.target.closest(".char");
  if (!b || b === S.suppressClick) return;
  const i = Number(b.dataset.index);
  if (S.openChar === i) closeCharPanel(true);
  else showChar(i);
});

export function showChar(i, focus = true) {
  S.openChar = i;
  const c = S.reading.answer.characters[i];
  ui.charTitle.textContent = t("charTitle", i + 1, S.reading.shown[i]);
  ui.alternatives.replaceChildren(...c.top_k.map((g) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.testid = "alternative";
    b.dataset.label = g.label;
    b.disabled = g.label === currentLabel(i);
    b.title = b.disabled ? t("feedbackSame") : "";
    const shown = document.createElement("span");
    shown.className = "label";
    shown.textContent = g.display;
    const pct = document.createElement("span");
    pct.className = "pct";
    pct.textContent = percent(g.probability);
    b.append(shown, pct);
    b.setAttribute("aria-label", `${g.display}: ${pct.textContent}`);
    return b;
  }));
  closeGrid(ui.charPicker, ui.charOther);
  const n = S.reading.answer.characters.length;
  ui.charSplit.disabled = (c.strokes?.length ?? 0) < 2;  // one stroke has no natural parts
  ui.charJoin.disabled = i + 1 >= n;
  ui.charSpace.disabled = /^\s/.test(readingText().slice(textEnd(i)));  // a space is there already
  ui.charPanel.hidden = false;
  for (const b of ui.chars.children) b.setAttribute("aria-expanded", String(Number(b.dataset.index) === i));
  if (!focus) return;
  (ui.alternatives.querySelector("button:not(:disabled)") ?? ui.charOther).focus({ preventScroll: true });
  // A phone held sideways shows the panel fixed at the screen's foot (style.css): scrolling
  // there would only take the pad off the screen.
  if (getComputedStyle(ui.charPanel).position !== "fixed") ui.charPanel.scrollIntoView({ block: "nearest" });
}

export function closeCharPanel(refocus = false) {
  const was = S.openChar;
  S.openChar = null;
  ui.charPanel.hidden = true;
  for (const b of ui.chars.children) b.setAttribute("aria-expanded", "false");
  if (refocus && was !== null) ui.chars.children[was]?.focus();
}

// The class a character stands for now (after any correction): its display's first letter.
export function currentLabel(i) {
  const shown = S.reading.shown[i];
  const label = S.reading.answer.characters[i].prediction;
  return shown.toLowerCase() === label.toLowerCase() ? label : shown;
}

ui.alternatives.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && !b.disabled) correctChar(S.openChar, b.dataset.label);
});
ui.charOther.addEventListener("click", () => {
  if (!ui.charPicker.hidden) {
    closeGrid(ui.charPicker, ui.charOther);
    return;
  }
  openGrid(ui.charPicker, ui.charChoices, ui.charOther, currentLabel(S.openChar));
});
ui.charChoices.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && !b.disabled) correctChar(S.openChar, b.dataset.label);
});

// navigator.clipboard needs a secure context and permission; the old way works without either.
ui.copy.addEventListener("click", async () => {
  if (!S.reading) return;
  const text = ui.text.textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
    ui.copy.focus();
  }
  setStatus("copied", { flash: true });
});

// Where character i ends in the text on screen.
function textEnd(i) {
  const text = readingText();
  let seen = -1;
  for (let at = 0; at < text.length; at++) {
    if (!/\s/.test(text[at]) && ++seen === i) return at + 1;
  }
  return text.length;
}

ui.charDelete.addEventListener("click", () => deleteChar(S.openChar));
ui.charSplit.addEventListener("click", () => splitChar(S.openChar));
ui.charJoin.addEventListener("click", () => joinNext(S.openChar));
ui.charSpace.addEventListener("click", () => spaceAfter(S.openChar));
