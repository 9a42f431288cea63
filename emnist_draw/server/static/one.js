// One character: /api/predict's answer, its status, the most likely classes and the 28x28
// image the model saw.

import { S } from "./state.js";
import { ui } from "./dom.js";
import { t, percent } from "./i18n.js";
import { inkBody } from "./pad.js";
import { actionButton, setStatus, setStatusActions } from "./status.js";
import { ask, read } from "./reading.js";
import { setFeedbackFor } from "./corrections.js";
import { setMode } from "./actions.js";

export const TOP_K = 5;

export async function predict(again) {
  const body = { ...inkBody(), top_k: TOP_K, return_input: true };
  const answer = await ask("/api/predict", body);
  if (!answer) return;
  // A dot or a scribble, or several characters, has no letter to call wrong.
  const letter = !["not_a_character", "several_characters"].includes(answer.status);
  setFeedbackFor(letter ? { body, prediction: answer.prediction } : null);
  showAnswer(answer, again);
}

export const shortLabel = (display) => display.split(" / ")[0];

export function showAnswer(answer, again = false) {
  S.lastAnswer = answer;
  S.lastAgain = again;
  const [best] = answer.top_k;
  const status = answer.status ?? "ok";  // servers before the status field: every answer is "ok"
  // Ink that is no character, or is several, has no big letter to show.
  const letter = status !== "not_a_character" && status !== "several_characters";
  ui.prediction.textContent = letter ? answer.prediction : "";
  ui.prediction.classList.toggle("unsure", status !== "ok");
  // "C / c": EMNIST-balanced has one class for both cases of 15 letters; say both.
  const merged = letter && best.display !== best.label;
  ui.alt.textContent = merged ? best.display.slice(best.label.length) : "";
  ui.alt.title = merged ? t("merged") : "";
  let text;
  const actions = [];
  if (status === "ambiguous") {
    const lookAlikes = answer.ambiguous_with?.length ? answer.ambiguous_with : [best.display];
    text = t("ambiguous", lookAlikes.map(shortLabel));
    // A digit that looks like a letter: one tap reads it again in the set it belongs to.
    const digit = lookAlikes.some((d) => /^[0-9]$/.test(d));
    const other = lookAlikes.some((d) => !/^[0-9]$/.test(d));
    if (digit && other && (S.charsetOnce ?? ui.charset.value) === "all") {
      actions.push(actionButton("use-digits", t("useDigits"), () => useCharset("digits")),
                   actionButton("use-letters", t("useLetters"), () => useCharset("letters")));
    }
  } else if (status === "unsure") {
    text = t("unsure", answer.top_k.slice(0, 3).map((g) => shortLabel(g.display)));
  } else if (status === "not_a_character") {
    text = t("notChar");
  } else if (status === "several_characters") {
    text = t("severalChars");
    actions.push(actionButton("switch-several", t("switchSeveral"), () => setMode("several")));
  } else {
    text = t("read", percent(best.probability, 0));
  }
  if (again) text = `${t("again", letter ? answer.prediction : "…")} · ${text}`;
  setStatus(null, { text, flash: again });
  setStatusActions(actions);
  ui.topk.replaceChildren(...(letter ? answer.top_k.map(topkItem) : []));
  if (answer.input) drawSeen(answer.input);
}

// For this character only: the next one is read in the set the select says, as before.
export function useCharset(charset) {
  S.charsetOnce = charset;
  read();
}

export function topkItem(guess) {
  const li = document.createElement("li");
  const pct = percent(guess.probability);
  li.dataset.label = guess.label;
  li.setAttribute("aria-label", `${guess.display}: ${pct}`);
  const label = document.createElement("span");
  label.className = "label";
  label.textContent = guess.display;
  const bar = document.createElement("span");
  bar.className = "bar";
  bar.setAttribute("aria-hidden", "true");
  const fill = document.createElement("span");
  fill.style.width = `${Math.max(0.5, guess.probability * 100)}%`;
  bar.append(fill);
  const value = document.createElement("span");
  value.className = "pct";
  value.textContent = pct;
  li.append(label, bar, value);
  return li;
}

export function drawSeen(pixels) {
  const c = ui.seen.getContext("2d");
  const img = c.createImageData(28, 28);
  pixels.forEach((v, i) => {
    img.data.set([v, v, v, 255], 4 * i);
  });
  c.putImageData(img, 0, 0);
  ui.seenFigure.hidden = false;
}
