// Sending the ink: one request at a time, the answer to an older drawing dropped; an empty pad
// never read.

import { S } from "./state.js";
import { ui } from "./dom.js";
import { t } from "./i18n.js";
import { describeError, setStatus, setStatusActions } from "./status.js";
import { predict } from "./one.js";
import { readString, setReading } from "./several.js";
import { setFeedbackFor } from "./corrections.js";

export function showEmpty(key) {
  S.lastAnswer = null;
  S.charsetOnce = null;  // a set a status offered was for the character now gone
  setFeedbackFor(null);
  setReading(null);
  S.requestSeq++;  // whatever was in flight no longer describes the pad
  if (S.inFlight) S.inFlight.abort();
  ui.prediction.textContent = "";
  ui.alt.textContent = "";
  ui.alt.title = "";
  ui.topk.replaceChildren();
  ui.seenFigure.hidden = true;
  setStatusActions([]);
  setStatus(key);
}

export function showError(err) {
  const message = err instanceof TypeError ? t("offline") : err.message;
  S.lastAnswer = null;
  setFeedbackFor(null);
  setReading(null);
  ui.prediction.textContent = "";
  ui.alt.textContent = "";
  ui.topk.replaceChildren();
  ui.seenFigure.hidden = true;
  setStatusActions([]);
  setStatus(null, { error: true, text: t("error", message) });
}

// One request at a time: a newer drawing aborts the older one's request and drops its answer.
export async function ask(url, body) {
  const seq = ++S.requestSeq;
  if (S.inFlight) S.inFlight.abort();
  S.inFlight = new AbortController();
  setStatus("reading");
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: S.inFlight.signal,
    });
    const answer = await res.json().catch(() => ({ detail: `${res.status} ${res.statusText}` }));
    if (!res.ok) throw new Error(describeError(answer.detail) || `${res.status} ${res.statusText}`);
    if (seq !== S.requestSeq) return null;
    S.inFlight = null;
    return answer;
  } catch (err) {
    if (err.name === "AbortError" || seq !== S.requestSeq) return null;
    showError(err);
    return null;
  }
}

// After each stroke (again = false) and on Predict (again = true: say that it read again).
export function read(again = false) {
  clearTimeout(S.liveTimer);
  if (S.strokes.length === 0) {
    showEmpty("empty");  // an empty pad is never "recognised"
    return;
  }
  return S.mode === "several" ? readString(again) : predict(again);
}
