// The drawing page: collects strokes with Pointer Events, sends them to /api/predict, shows
// the answer. No pixels are made here: the server's preprocessing turns ink into the 28x28 input.
"use strict";

const INK_WIDTH = 0.035;       // pen width as a fraction of the pad's side, on any screen
const LIVE_DELAY_MS = 250;     // after a stroke ends; a second stroke soon after cancels the read
const TOP_K = 5;
const MIN_STEP = 0.003;        // of the pad's side: closer samples add points, not shape
const MAX_POINTS_SENT = 1000;  // per stroke, under the API's limit, however long the pen lingers
const STORE = { charset: "emnist-draw.charset", lang: "emnist-draw.lang" };
// The 47 EMNIST-balanced classes, for the correction picker until /api/model says them.
const CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt";
const MERGED = "cijklmopsuvwxyz";  // one class for both cases: shown as "C / c"

const TEXT = {
  en: {
    title: "Draw a character",
    lede: "A digit or a Latin letter. A neural network trained on EMNIST reads it as you draw.",
    padTitle: "Drawing pad",
    padLabel: "Drawing pad: draw one character with the mouse, a finger or a pen",
    padHint: "Draw here",
    predict: "Predict", undo: "Undo", clear: "Clear",
    charsetLabel: "Characters",
    charsetAll: "All 47 classes", charsetDigits: "Digits only", charsetLetters: "Letters only",
    keys: "<kbd>Esc</kbd> or <kbd>Delete</kbd> clears, <kbd>Ctrl</kbd>+<kbd>Z</kbd> undoes",
    resultTitle: "Reading",
    start: "Draw a character to start.",
    empty: "The canvas is empty: draw a character first.",
    reading: "Reading…",
    read: (p) => `${p}% sure`,
    merged: "EMNIST does not tell this letter's cases apart",
    seen: "What the model saw: 28×28 pixels",
    error: (m) => `Error: ${m}`,
    offline: "The server did not answer; is it running?",
    api: "API",
    model: (name, acc) => `Model ${name}` + (acc ? `, balanced accuracy ${acc}%` : ""),
    feedbackAsk: "Wrong? Tell us what it was",
    feedbackPick: "What was it?",
    feedbackSaving: "Saving…",
    feedbackSaved: "Thanks — saved",
    feedbackSame: "That is what the model said",
    langButton: "RU", langLabel: "Русский язык",
  },
  ru: {
    title: "Нарисуйте символ",
    lede: "Цифру или латинскую букву. Нейросеть, обученная на EMNIST, читает её, пока вы рисуете.",
    padTitle: "Поле для рисования",
    padLabel: "Поле для рисования: нарисуйте один символ мышью, пальцем или пером",
    padHint: "Рисуйте здесь",
    predict: "Распознать", undo: "Отменить", clear: "Очистить",
    charsetLabel: "Символы",
    charsetAll: "Все 47 классов", charsetDigits: "Только цифры", charsetLetters: "Только буквы",
    keys: "<kbd>Esc</kbd> или <kbd>Delete</kbd> очищает, <kbd>Ctrl</kbd>+<kbd>Z</kbd> отменяет",
    resultTitle: "Результат",
    start: "Нарисуйте символ, чтобы начать.",
    empty: "Поле пустое: сначала нарисуйте символ.",
    reading: "Распознаю…",
    read: (p) => `уверенность ${p}%`,
    merged: "EMNIST не различает регистр этой буквы",
    seen: "Что увидела модель: 28×28 пикселей",
    error: (m) => `Ошибка: ${m}`,
    offline: "Сервер не ответил; он запущен?",
    api: "API",
    model: (name, acc) => `Модель ${name}` + (acc ? `, сбалансированная точность ${acc}%` : ""),
    feedbackAsk: "Неверно? Скажите, что это было",
    feedbackPick: "Что это было?",
    feedbackSaving: "Сохраняю…",
    feedbackSaved: "Спасибо — сохранено",
    feedbackSame: "Это и сказала модель",
    langButton: "EN", langLabel: "English",
  },
};

const $ = (id) => document.getElementById(id);

// localStorage throws where the browser forbids storage (some private modes): then forget.
function load(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}
function save(key, value) {
  try { localStorage.setItem(key, value); } catch { /* the choice lasts this visit only */ }
}

const pad = $("pad");
const ctx = pad.getContext("2d");
const ui = {
  predict: $("predict"), undo: $("undo"), clear: $("clear"), charset: $("charset"),
  prediction: $("prediction"), alt: $("prediction-alt"), status: $("status"), topk: $("topk"),
  seenFigure: $("seen-figure"), seen: $("seen"), hint: $("pad-hint"), lang: $("lang"),
  modelInfo: $("model-info"), feedbackBox: $("feedback-box"), feedback: $("feedback"),
  picker: $("feedback-picker"), choices: $("feedback-choices"), feedbackStatus: $("feedback-status"),
};

// Points are kept as fractions of the pad's side, so a resize or rotation keeps the drawing;
// they become CSS pixels only when sent.
const strokes = [];
let current = null;          // the stroke being drawn
let activePointer = null;    // one pen at a time: a second finger does not draw
let liveTimer = 0;
let requestSeq = 0;          // answers to older drawings are dropped
let inFlight = null;
let lang = load(STORE.lang) === "ru" ? "ru" : "en";
let modelInfo = null;
let statusKey = "start";     // what the status line says, to say it again in another language
let lastAnswer = null;
let feedbackFor = null;      // the reading a correction would correct: {body, prediction}
let feedbackShown = null;    // what the correction's status line says: {key} or {error}

const t = (key, ...args) => {
  const v = TEXT[lang][key];
  return typeof v === "function" ? v(...args) : v;
};

// ---------------------------------------------------------------- the pad

function sizePad() {
  const side = pad.getBoundingClientRect().width;
  const dpr = window.devicePixelRatio || 1;
  const px = Math.max(1, Math.round(side * dpr));
  if (pad.width !== px || pad.height !== px) {
    pad.width = px;
    pad.height = px;
  }
  redraw();
}

function redraw() {
  const side = pad.width;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, side, side);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = INK_WIDTH * side;
  ctx.strokeStyle = ctx.fillStyle = getComputedStyle(document.documentElement)
    .getPropertyValue("--pad-ink").trim() || "#111";
  for (const s of strokes) drawStroke(s, side);
  if (current) drawStroke(current, side);
  ui.hint.classList.toggle("gone", strokes.length > 0 || current !== null);
}

// Quadratic curves through the midpoints between samples: smooth without lagging the pen.
function drawStroke(points, side) {
  const p = points.map(([x, y]) => [x * side, y * side]);
  if (p.length === 1) {
    ctx.beginPath();
    ctx.arc(p[0][0], p[0][1], ctx.lineWidth / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(p[0][0], p[0][1]);
  for (let i = 1; i < p.length - 1; i++) {
    const mx = (p[i][0] + p[i + 1][0]) / 2;
    const my = (p[i][1] + p[i + 1][1]) / 2;
    ctx.quadraticCurveTo(p[i][0], p[i][1], mx, my);
  }
  const last = p[p.length - 1];
  ctx.lineTo(last[0], last[1]);
  ctx.stroke();
}

function pointOf(event) {
  const r = pad.getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((event.clientX - r.left) / r.width), clamp((event.clientY - r.top) / r.height)];
}

let frameRequested = false;
function scheduleRedraw() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => { frameRequested = false; redraw(); });
}

pad.addEventListener("pointerdown", (e) => {
  if (activePointer !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
  e.preventDefault();
  activePointer = e.pointerId;
  pad.setPointerCapture(e.pointerId);
  clearTimeout(liveTimer);
  current = [pointOf(e)];
  scheduleRedraw();
});

pad.addEventListener("pointermove", (e) => {
  if (e.pointerId !== activePointer || !current) return;
  e.preventDefault();
  // Coalesced events carry every sample the device made between frames: smoother fast strokes.
  const samples = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const s of samples.length ? samples : [e]) {
    const p = pointOf(s);
    const last = current[current.length - 1];
    if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= MIN_STEP) current.push(p);
  }
  scheduleRedraw();
});

function endStroke(e) {
  if (e.pointerId !== activePointer) return;
  activePointer = null;
  if (current) {
    strokes.push(current);
    current = null;
    redraw();
    updateButtons();
    clearTimeout(liveTimer);
    liveTimer = setTimeout(predict, LIVE_DELAY_MS);
  }
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("lostpointercapture", endStroke);
// iOS Safari still scrolls on touchmove unless told not to, whatever touch-action says.
pad.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });
pad.addEventListener("contextmenu", (e) => e.preventDefault());

// ---------------------------------------------------------------- reading

function setStatus(key, { error = false, text = null } = {}) {
  statusKey = error ? null : key;
  ui.status.textContent = text ?? t(key);
  ui.status.classList.toggle("error", error);
  ui.status.setAttribute("role", error ? "alert" : "status");
}

function showEmpty(key) {
  lastAnswer = null;
  setFeedbackFor(null);
  requestSeq++;  // whatever was in flight no longer describes the pad
  if (inFlight) inFlight.abort();
  ui.prediction.textContent = "";
  ui.alt.textContent = "";
  ui.alt.title = "";
  ui.topk.replaceChildren();
  ui.seenFigure.hidden = true;
  setStatus(key);
}

async function predict() {
  clearTimeout(liveTimer);
  if (strokes.length === 0) {
    showEmpty("empty");  // an empty pad is never "recognised"
    return;
  }
  const side = pad.getBoundingClientRect().width;
  const body = {
    strokes: strokes.map((s) => thin(s).map(([x, y]) => [round1(x * side), round1(y * side)])),
    canvas: { width: round1(side), height: round1(side) },
    top_k: TOP_K,
    charset: ui.charset.value,
    return_input: true,
  };
  const seq = ++requestSeq;
  if (inFlight) inFlight.abort();
  inFlight = new AbortController();
  setStatus("reading");
  let answer;
  try {
    const res = await fetch("/api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: inFlight.signal,
    });
    answer = await res.json().catch(() => ({ detail: `${res.status} ${res.statusText}` }));
    if (!res.ok) throw new Error(describeError(answer.detail) || `${res.status} ${res.statusText}`);
  } catch (err) {
    if (err.name === "AbortError" || seq !== requestSeq) return;
    const message = err instanceof TypeError ? t("offline") : err.message;
    lastAnswer = null;
    setFeedbackFor(null);
    ui.prediction.textContent = "";
    ui.alt.textContent = "";
    ui.topk.replaceChildren();
    ui.seenFigure.hidden = true;
    setStatus(null, { error: true, text: t("error", message) });
    return;
  }
  if (seq !== requestSeq) return;
  inFlight = null;
  setFeedbackFor({ body, prediction: answer.prediction });
  showAnswer(answer);
}

const round1 = (v) => Math.round(v * 10) / 10;

// Every k-th point (and the last) of a stroke too long to send whole.
function thin(stroke) {
  if (stroke.length <= MAX_POINTS_SENT) return stroke;
  const k = Math.ceil(stroke.length / (MAX_POINTS_SENT - 1));
  return stroke.filter((_, i) => i % k === 0).concat([stroke[stroke.length - 1]]);
}

function describeError(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return detail ? JSON.stringify(detail) : "";
}

function showAnswer(answer) {
  lastAnswer = answer;
  const [best] = answer.top_k;
  ui.prediction.textContent = answer.prediction;
  // "C / c": EMNIST-balanced has one class for both cases of 15 letters; say both.
  const merged = best.display !== best.label;
  ui.alt.textContent = merged ? best.display.slice(best.label.length) : "";
  ui.alt.title = merged ? t("merged") : "";
  setStatus("read", { text: t("read", Math.round(best.probability * 100)) });
  ui.topk.replaceChildren(...answer.top_k.map(topkItem));
  if (answer.input) drawSeen(answer.input);
}

function topkItem(guess) {
  const li = document.createElement("li");
  const pct = (guess.probability * 100).toFixed(1);
  li.dataset.label = guess.label;
  li.setAttribute("aria-label", `${guess.display}: ${pct}%`);
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
  value.textContent = `${pct}%`;
  li.append(label, bar, value);
  return li;
}

function drawSeen(pixels) {
  const c = ui.seen.getContext("2d");
  const img = c.createImageData(28, 28);
  pixels.forEach((v, i) => {
    img.data.set([v, v, v, 255], 4 * i);
  });
  c.putImageData(img, 0, 0);
  ui.seenFigure.hidden = false;
}

// ---------------------------------------------------------------- corrections

// A new reading (or none) starts the correction control afresh: a correction always goes with
// the ink of the reading on screen, exactly the body that was sent to /api/predict.
function setFeedbackFor(reading) {
  feedbackFor = reading;
  feedbackShown = null;
  ui.feedbackBox.hidden = reading === null;
  ui.feedback.disabled = false;
  closePicker();
  showFeedbackStatus();
}

function openPicker() {
  if (!ui.choices.childElementCount) buildPicker();
  for (const b of ui.choices.children) {
    // Correcting a reading to what it already said is no correction.
    const same = b.dataset.label === feedbackFor?.prediction;
    b.disabled = same;
    b.title = same ? t("feedbackSame") : "";
  }
  ui.picker.hidden = false;
  ui.feedback.setAttribute("aria-expanded", "true");
  ui.choices.querySelector("button:not(:disabled)")?.focus();
}

function closePicker() {
  ui.picker.hidden = true;
  ui.feedback.setAttribute("aria-expanded", "false");
}

function buildPicker() {
  const classes = modelInfo?.classes ?? [...CLASSES];
  const display = (c) => modelInfo?.display?.[c]
    ?? (MERGED.includes(c.toLowerCase()) && c !== c.toLowerCase() ? `${c} / ${c.toLowerCase()}` : c);
  ui.choices.replaceChildren(...classes.map((c) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.label = c;
    b.textContent = display(c);
    return b;
  }));
}

function showFeedbackStatus() {
  const s = feedbackShown;
  ui.feedbackStatus.textContent = !s ? "" : s.error ? t("error", s.error) : t(s.key);
  ui.feedbackStatus.classList.toggle("error", Boolean(s?.error));
  ui.feedbackStatus.setAttribute("role", s?.error ? "alert" : "status");
}

async function sendFeedback(label) {
  const reading = feedbackFor;
  if (!reading) return;
  for (const b of ui.choices.children) b.disabled = true;
  feedbackShown = { key: "feedbackSaving" };
  showFeedbackStatus();
  let error = null;
  try {
    const res = await fetch("/api/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...reading.body, label, predicted: reading.prediction }),
    });
    if (res.status !== 201) {
      const answer = await res.json().catch(() => ({}));
      error = describeError(answer.detail) || `${res.status} ${res.statusText}`;
    }
  } catch (err) {
    error = err instanceof TypeError ? t("offline") : err.message;
  }
  if (reading !== feedbackFor) return;  // the pad changed meanwhile: this status is stale
  feedbackShown = error ? { error } : { key: "feedbackSaved" };
  if (error) {
    openPicker();  // choose again, or try again
  } else {
    closePicker();
    ui.feedback.disabled = true;  // one correction per reading
  }
  showFeedbackStatus();
}

ui.feedback.addEventListener("click", () => (ui.picker.hidden ? openPicker() : closePicker()));
ui.choices.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && !b.disabled) sendFeedback(b.dataset.label);
});

// ---------------------------------------------------------------- actions

function clearPad() {
  strokes.length = 0;
  current = null;
  activePointer = null;
  clearTimeout(liveTimer);
  redraw();
  updateButtons();
  showEmpty("empty");
}

function undo() {
  if (strokes.length === 0) return;
  strokes.pop();
  redraw();
  updateButtons();
  if (strokes.length === 0) showEmpty("empty");
  else predict();
}

function updateButtons() {
  ui.undo.disabled = strokes.length === 0;
}

ui.predict.addEventListener("click", predict);
ui.clear.addEventListener("click", clearPad);
ui.undo.addEventListener("click", undo);

ui.charset.addEventListener("change", () => {
  save(STORE.charset, ui.charset.value);
  if (strokes.length) predict();
});

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && !ui.picker.hidden) {  // Escape closes the picker before it clears
    e.preventDefault();
    closePicker();
    ui.feedback.focus();
  } else if (e.key === "Escape" || e.key === "Delete") {
    e.preventDefault();
    clearPad();
  } else if ((e.ctrlKey || e.metaKey) && !e.shiftKey && e.key.toLowerCase() === "z") {
    e.preventDefault();
    undo();
  }
});

// ---------------------------------------------------------------- language, model, start-up

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = `emnist-draw: ${t("title").toLowerCase()}`;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-html]")) el.innerHTML = t(el.dataset.i18nHtml);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  ui.lang.textContent = t("langButton");
  ui.lang.setAttribute("aria-label", t("langLabel"));
  ui.lang.lang = lang === "en" ? "ru" : "en";
  if (lastAnswer) showAnswer(lastAnswer);
  else if (statusKey) setStatus(statusKey);
  showFeedbackStatus();
  showModelInfo();
}

function showModelInfo() {
  if (!modelInfo) return;
  const acc = modelInfo.metrics?.balanced_accuracy;
  ui.modelInfo.textContent = t("model", modelInfo.name, acc ? (acc * 100).toFixed(1) : null);
}

ui.lang.addEventListener("click", () => {
  lang = lang === "en" ? "ru" : "en";
  save(STORE.lang, lang);
  applyLanguage();
});

const savedCharset = load(STORE.charset);
if ([...ui.charset.options].some((o) => o.value === savedCharset)) ui.charset.value = savedCharset;

fetch("/api/model").then((r) => (r.ok ? r.json() : null)).then((info) => {
  modelInfo = info;
  showModelInfo();
}).catch(() => {});

new ResizeObserver(sizePad).observe(pad);
// A window moved to a screen of another density changes devicePixelRatio, not the pad's size.
matchMedia(`(resolution: ${window.devicePixelRatio}dppx)`).addEventListener?.("change", sizePad);
applyLanguage();
updateButtons();
sizePad();
