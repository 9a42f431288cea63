// The status line under the answer, the buttons it offers, and the server's error messages.

import { S } from "./state.js";
import { ui } from "./dom.js";
import { tm } from "./i18n.js";

export function setStatus(key, { error = false, text = null, flash = false } = {}) {
  S.statusKey = error || text !== null ? null : key;
  ui.status.textContent = text ?? tm(key);
  ui.status.classList.toggle("error", error);
  ui.status.setAttribute("role", error ? "alert" : "status");
  if (flash) {
    // Predict pressed on a drawing already read: the same words would look like nothing happened.
    ui.status.classList.remove("flash");
    void ui.status.offsetWidth;  // restart the animation
    ui.status.classList.add("flash");
  }
}

export function setStatusActions(buttons) {
  ui.statusActions.replaceChildren(...buttons);
  ui.statusActions.hidden = buttons.length === 0;
}

export function actionButton(testId, text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.testid = testId;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

export function describeError(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return detail ? JSON.stringify(detail) : "";
}

