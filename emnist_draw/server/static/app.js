// The drawing page: collects strokes with Pointer Events, sends them to /api/predict (one
// character) or /api/read (several), shows the answer. No pixels are made here: the server's
// preprocessing turns ink into the 28x28 input. This module starts the page; the others each
// do one job (see their first lines).

import { S } from "./state.js";
import { pad, ui, STORE, save } from "./dom.js";
import { t, percent } from "./i18n.js";
import { sizePad } from "./pad.js";
import { showAnswer } from "./one.js";
import { showChar, showReading } from "./several.js";
import { showFeedbackStatus, showReadFeedbackStatus } from "./corrections.js";
import { gridButtons } from "./picker.js";
import { showMode, updateButtons } from "./actions.js";
import { loadChoices } from "./hints.js";

function applyLanguage() {
  document.documentElement.lang = S.lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-html]")) el.innerHTML = t(el.dataset.i18nHtml);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  ui.lang.textContent = t("langButton");
  ui.lang.setAttribute("aria-label", t("langLabel"));
  ui.lang.lang = S.lang === "en" ? "ru" : "en";
  showMode();
  if (S.lastAnswer) showAnswer(S.lastAnswer, S.lastAgain);
  if (S.reading) {
    showReading();
    if (S.openChar !== null) showChar(S.openChar, false);
  }
  // The pickers' "what the model said" titles are in the language they were built in.
  for (const c of [ui.choices, ui.charChoices]) {
    for (const b of gridButtons(c)) b.title = b.title ? t("feedbackSame") : "";
  }
  showFeedbackStatus();
  showReadFeedbackStatus();
  showModelInfo();
}

function showModelInfo() {
  if (!S.modelInfo) return;
  const acc = S.modelInfo.metrics?.balanced_accuracy;
  ui.modelInfo.textContent = t("model", S.modelInfo.name, acc ? percent(acc) : null);
}

ui.lang.addEventListener("click", () => {
  S.lang = S.lang === "en" ? "ru" : "en";
  save(STORE.lang, S.lang);
  applyLanguage();
});

loadChoices();

fetch("/api/model").then((r) => (r.ok ? r.json() : null)).then((info) => {
  S.modelInfo = info;
  showModelInfo();
}).catch(() => {});

new ResizeObserver(sizePad).observe(pad);
// A window moved to a screen of another density changes devicePixelRatio, not the pad's size.
matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener?.("change", sizePad);
applyLanguage();
updateButtons();
sizePad();
