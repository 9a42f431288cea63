// The page's elements, and the browser storage that remembers the visitor's choices.

export const $ = (id) => document.getElementById(id);

export const pad = $("pad");
export const frame = $("pad-frame");
export const ui = {
  predict: $("predict"), undo: $("undo"), clear: $("clear"), charset: $("charset"),
  prediction: $("prediction"), alt: $("prediction-alt"), status: $("status"), topk: $("topk"),
  statusActions: $("status-actions"),
  seenFigure: $("seen-figure"), seen: $("seen"), hint: $("pad-hint"), lang: $("lang"),
  modelInfo: $("model-info"), feedbackBox: $("feedback-box"), feedback: $("feedback"),
  picker: $("feedback-picker"), choices: $("feedback-choices"), feedbackStatus: $("feedback-status"),
  title: $("title"), lede: $("lede"), modeOne: $("mode-one"), modeSeveral: $("mode-several"),
  chars: $("chars"), text: $("text"), copy: $("copy"), charPanel: $("char-panel"),
  charTitle: $("char-title"), alternatives: $("alternatives"), charOther: $("char-other"),
  charPicker: $("char-picker"), charChoices: $("char-choices"), fixForm: $("fix-form"),
  fixText: $("fix-text"), readFeedbackStatus: $("read-feedback-status"),
  hintSelect: $("hint"), pattern: $("pattern"), charDelete: $("char-delete"), charSplit: $("char-split"),
  charJoin: $("char-join"), charSpace: $("char-space"),
};

export const STORE = { charset: "emnist-draw.charset", lang: "emnist-draw.lang", mode: "emnist-draw.mode" };

// localStorage throws where the browser forbids storage (some private modes): then forget.
export function load(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}
export function save(key, value) {
  try { localStorage.setItem(key, value); } catch { /* the choice lasts this visit only */ }
}
