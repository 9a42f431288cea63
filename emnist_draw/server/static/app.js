// The drawing page: collects strokes with Pointer Events, sends them to /api/predict (one
// character) or /api/read (several), shows the answer. No pixels are made here: the server's
// preprocessing turns ink into the 28x28 input.
"use strict";

const INK_WIDTH = { one: 0.035, several: 0.025 };  // of the pad's height: a string's characters are smaller
const LIVE_DELAY_MS = 250;     // after a stroke ends; a second stroke soon after cancels the read
const TOP_K = 5;
const MIN_STEP = 0.003;        // of the pad's height: closer samples add points, not shape
const TAP_SLOP = 0.02;         // of the pad's height: a press on a character that moves less is a tap
const MAX_POINTS_SENT = 1000;  // per stroke, under the API's limit, however long the pen lingers
const PICKER_COLUMNS = 8;      // the 47 classes in 6 rows: arrow keys move by one or by a row
const STORE = { charset: "emnist-draw.charset", lang: "emnist-draw.lang", mode: "emnist-draw.mode" };
// The 47 EMNIST-balanced classes, for the correction picker until /api/model says them.
const CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt";
const MERGED = "cijklmopsuvwxyz";  // one class for both cases: shown as "C / c"

// Keys ending in "Several" replace their plain key in the several-characters mode (see tm).
const TEXT = {
  en: {
    title: "Draw a character",
    titleSeveral: "Write a number or a word",
    lede: "A digit or a Latin letter. A neural network trained on EMNIST reads it as you draw.",
    ledeSeveral: "Digits and Latin letters, left to right. The same network reads each character as you write.",
    modeLabel: "What to write", modeOne: "One character", modeSeveral: "Several characters",
    padTitle: "Drawing pad",
    padLabel: "Drawing pad: draw one character with the mouse, a finger or a pen",
    padLabelSeveral: "Wide drawing pad: write several characters, left to right, with the mouse, a finger or a pen",
    padHint: "Draw here",
    padHintSeveral: "Write here, left to right",
    charsLabel: "Characters read",
    predict: "Predict", undo: "Undo", clear: "Clear",
    charsetLabel: "Characters",
    charsetAll: "All 47 classes", charsetDigits: "Digits only", charsetLetters: "Letters only",
    keys: "<kbd>Esc</kbd> or <kbd>Delete</kbd> clears, <kbd>Ctrl</kbd>+<kbd>Z</kbd> undoes",
    resultTitle: "Reading",
    start: "Draw a character to start.",
    startSeveral: "Write a number or a word to start.",
    empty: "The canvas is empty: draw a character first.",
    emptySeveral: "The canvas is empty: write something first.",
    reading: "Reading…",
    read: (p) => `${p} sure`,
    again: (what) => `Read again: ${what}`,
    ambiguous: (labels) => `${labels.join(" or ")}?`,
    useDigits: "Digits only", useLetters: "Letters only",
    unsure: (labels) => `Not sure: maybe ${labels.join(", ")}`,
    notChar: "That does not look like a character",
    severalChars: "Several characters: switch to Several characters",
    switchSeveral: "Read as several characters",
    merged: "EMNIST does not tell this letter's cases apart",
    seen: "What the model saw: 28×28 pixels",
    error: (m) => `Error: ${m}`,
    offline: "The server did not answer; is it running?",
    api: "API",
    model: (name, acc) => `Model ${name}` + (acc ? `, balanced accuracy ${acc}` : ""),
    feedbackAsk: "Wrong? Tell us what it was",
    feedbackPick: "What was it?",
    feedbackSaving: "Saving…",
    feedbackSaved: "Thanks — saved",
    feedbackSame: "That is what the model said",
    textLabel: "Text read", copy: "Copy", copied: "Copied",
    readText: (n) => `${n} ${n === 1 ? "character" : "characters"}: tap one to correct it`,
    doubts: (n) => `${n} not sure (dashed): tap to check`,
    nothingRead: "Nothing read",
    charLabel: (i, n, shown, sure) => `Character ${i} of ${n}: ${shown}${sure ? "" : ", not sure"}. Alternatives`,
    charTitle: (i, shown) => `Character ${i}, read as ${shown}. Is it one of these?`,
    otherChar: "Another character…",
    fixLabel: "Wrong? Type what it says",
    send: "Send",
    fixSame: "That is what it read",
    langButton: "RU", langLabel: "Русский язык",
  },
  ru: {
    title: "Нарисуйте символ",
    titleSeveral: "Напишите число или слово",
    lede: "Цифру или латинскую букву. Нейросеть, обученная на EMNIST, читает её, пока вы рисуете.",
    ledeSeveral: "Цифры и латинские буквы, слева направо. Та же нейросеть читает каждый символ, пока вы пишете.",
    modeLabel: "Что писать", modeOne: "Один символ", modeSeveral: "Несколько символов",
    padTitle: "Поле для рисования",
    padLabel: "Поле для рисования: нарисуйте один символ мышью, пальцем или пером",
    padLabelSeveral: "Широкое поле: напишите несколько символов слева направо мышью, пальцем или пером",
    padHint: "Рисуйте здесь",
    padHintSeveral: "Пишите здесь, слева направо",
    charsLabel: "Прочитанные символы",
    predict: "Распознать", undo: "Отменить", clear: "Очистить",
    charsetLabel: "Символы",
    charsetAll: "Все 47 классов", charsetDigits: "Только цифры", charsetLetters: "Только буквы",
    keys: "<kbd>Esc</kbd> или <kbd>Delete</kbd> очищает, <kbd>Ctrl</kbd>+<kbd>Z</kbd> отменяет",
    resultTitle: "Результат",
    start: "Нарисуйте символ, чтобы начать.",
    startSeveral: "Напишите число или слово, чтобы начать.",
    empty: "Поле пустое: сначала нарисуйте символ.",
    emptySeveral: "Поле пустое: сначала напишите что-нибудь.",
    reading: "Распознаю…",
    read: (p) => `уверенность ${p}`,
    again: (what) => `Прочитано ещё раз: ${what}`,
    ambiguous: (labels) => `${labels.join(" или ")}?`,
    useDigits: "Только цифры", useLetters: "Только буквы",
    unsure: (labels) => `Не уверена: может быть, ${labels.join(", ")}`,
    notChar: "Это не похоже на символ",
    severalChars: "Несколько символов: переключитесь на «Несколько символов»",
    switchSeveral: "Прочитать как несколько символов",
    merged: "EMNIST не различает регистр этой буквы",
    seen: "Что увидела модель: 28×28 пикселей",
    error: (m) => `Ошибка: ${m}`,
    offline: "Сервер не ответил; он запущен?",
    api: "API",
    model: (name, acc) => `Модель ${name}` + (acc ? `, сбалансированная точность ${acc}` : ""),
    feedbackAsk: "Неверно? Скажите, что это было",
    feedbackPick: "Что это было?",
    feedbackSaving: "Сохраняю…",
    feedbackSaved: "Спасибо — сохранено",
    feedbackSame: "Это и сказала модель",
    textLabel: "Прочитанный текст", copy: "Копировать", copied: "Скопировано",
    readText: (n) => `Символов: ${n}. Нажмите на символ, чтобы исправить его`,
    doubts: (n) => `Под вопросом: ${n} (пунктир), проверьте`,
    nothingRead: "Ничего не прочитано",
    charLabel: (i, n, shown, sure) => `Символ ${i} из ${n}: ${shown}${sure ? "" : ", не уверена"}. Варианты`,
    charTitle: (i, shown) => `Символ ${i} прочитан как ${shown}. Это один из этих?`,
    otherChar: "Другой символ…",
    fixLabel: "Неверно? Напишите, что там",
    send: "Отправить",
    fixSame: "Так и прочитано",
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
const frame = $("pad-frame");
const ctx = pad.getContext("2d");
const ui = {
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
};

// Points are kept in units of the pad's height (y from 0 to 1, x from 0 to width / height), so
// a resize or rotation keeps the drawing, and a character drawn on the square pad keeps its
// shape on the wide one; they become CSS pixels only when sent.
const strokes = [];
let current = null;          // the stroke being drawn
let activePointer = null;    // one pen at a time: a second finger does not draw
let tapStart = null;         // a press on a character's box, until it moves: {point, char}
let suppressClick = null;    // the character a press started on that became a stroke
let liveTimer = 0;
let requestSeq = 0;          // answers to older drawings are dropped
let inFlight = null;
let lang = load(STORE.lang) === "ru" ? "ru" : "en";
let mode = load(STORE.mode) === "several" ? "several" : "one";
let modelInfo = null;
let statusKey = "start";     // what the status line says, to say it again in another language
let lastAnswer = null;       // one character: the /api/predict answer on screen
let lastAgain = false;       // ... and whether Predict asked for it again
let feedbackFor = null;      // the reading a correction would correct: {body, prediction}
let feedbackShown = null;    // what the correction's status line says: {key} or {error}
let reading = null;          // several characters: {body, answer, shown: [display...], again}
let openChar = null;         // the index of the character whose alternatives are shown
let readShown = null;        // what the string correction's status line says: {key} or {error}
// A drawing's corrections: each one the server saved replaces the one before, so that only the
// latest text counts (correcting a 2nd character would otherwise leave the first correction,
// whose other characters were still wrong, as training data).
let drawing = 0;             // a new stroke, Undo, Clear or a mode switch starts a new drawing
let sentRead = null;         // the last string correction saved: {drawing, id, strokes, canvas}
let readQueue = Promise.resolve();  // string corrections go one at a time (see sendRead)

const t = (key, ...args) => {
  const v = TEXT[lang][key];
  return typeof v === "function" ? v(...args) : v;
};
// The several-characters mode's own wording where it has one.
const tm = (key, ...args) => t(mode === "several" && `${key}Several` in TEXT[lang] ? `${key}Several` : key, ...args);

// Percentages as the language writes them: "90.3%", "90,3 %".
function percent(p, digits = 1) {
  return new Intl.NumberFormat(lang === "ru" ? "ru-RU" : "en-US", {
    style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(p);
}

// ---------------------------------------------------------------- the pad

function sizePad() {
  const r = pad.getBoundingClientRect();
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(r.width * dpr));
  const h = Math.max(1, Math.round(r.height * dpr));
  if (pad.width !== w || pad.height !== h) {
    pad.width = w;
    pad.height = h;
  }
  redraw();
  placeChars();
}

function redraw() {
  const unit = pad.height;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, pad.width, pad.height);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = INK_WIDTH[mode] * unit;
  ctx.strokeStyle = ctx.fillStyle = getComputedStyle(document.documentElement)
    .getPropertyValue("--pad-ink").trim() || "#111";
  for (const s of strokes) drawStroke(s, unit);
  if (current) drawStroke(current, unit);
  ui.hint.classList.toggle("gone", strokes.length > 0 || current !== null);
}

// Quadratic curves through the midpoints between samples: smooth without lagging the pen.
function drawStroke(points, unit) {
  const p = points.map(([x, y]) => [x * unit, y * unit]);
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
  const clamp = (v, high) => Math.min(high, Math.max(0, v));
  return [clamp((event.clientX - r.left) / r.height, r.width / r.height),
          clamp((event.clientY - r.top) / r.height, 1)];
}

let frameRequested = false;
function scheduleRedraw() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => { frameRequested = false; redraw(); });
}

// The listeners are on the pad's frame, not the canvas: a stroke may start over a character's
// box (a 7's bar, a t's cross), which is a button above the canvas.
frame.addEventListener("pointerdown", (e) => {
  if (activePointer !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
  activePointer = e.pointerId;
  clearTimeout(liveTimer);
  suppressClick = null;
  const char = e.target.closest(".char");
  if (char) {
    // A tap opens the character (its click does), a drag draws: wait for the pen to move.
    tapStart = { point: pointOf(e), char };
    return;
  }
  e.preventDefault();
  frame.setPointerCapture(e.pointerId);
  current = [pointOf(e)];
  scheduleRedraw();
});

frame.addEventListener("pointermove", (e) => {
  if (e.pointerId !== activePointer) return;
  if (tapStart) {
    const p = pointOf(e);
    if (Math.hypot(p[0] - tapStart.point[0], p[1] - tapStart.point[1]) < TAP_SLOP) return;
    current = [tapStart.point];
    suppressClick = tapStart.char;
    tapStart = null;
    frame.setPointerCapture(e.pointerId);
  }
  if (!current) return;
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
  tapStart = null;  // a tap: the click that follows it opens the character
  // A click after a stroke that began on a character is no tap; later clicks are.
  setTimeout(() => { suppressClick = null; });
  if (current) {
    strokes.push(current);
    current = null;
    drawing++;
    redraw();
    updateButtons();
    clearTimeout(liveTimer);
    liveTimer = setTimeout(() => read(), LIVE_DELAY_MS);
  }
}
frame.addEventListener("pointerup", endStroke);
frame.addEventListener("pointercancel", endStroke);
frame.addEventListener("lostpointercapture", endStroke);
// iOS Safari still scrolls on touchmove unless told not to, whatever touch-action says.
frame.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });
frame.addEventListener("contextmenu", (e) => e.preventDefault());

// ---------------------------------------------------------------- reading

function setStatus(key, { error = false, text = null, flash = false } = {}) {
  statusKey = error || text !== null ? null : key;
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

function setStatusActions(buttons) {
  ui.statusActions.replaceChildren(...buttons);
  ui.statusActions.hidden = buttons.length === 0;
}

function actionButton(testId, text, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.dataset.testid = testId;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function showEmpty(key) {
  lastAnswer = null;
  setFeedbackFor(null);
  setReading(null);
  requestSeq++;  // whatever was in flight no longer describes the pad
  if (inFlight) inFlight.abort();
  ui.prediction.textContent = "";
  ui.alt.textContent = "";
  ui.alt.title = "";
  ui.topk.replaceChildren();
  ui.seenFigure.hidden = true;
  setStatusActions([]);
  setStatus(key);
}

function showError(err) {
  const message = err instanceof TypeError ? t("offline") : err.message;
  lastAnswer = null;
  setFeedbackFor(null);
  setReading(null);
  ui.prediction.textContent = "";
  ui.alt.textContent = "";
  ui.topk.replaceChildren();
  ui.seenFigure.hidden = true;
  setStatusActions([]);
  setStatus(null, { error: true, text: t("error", message) });
}

// The drawing in CSS pixels, as both endpoints take it.
function inkBody() {
  const r = pad.getBoundingClientRect();
  return {
    strokes: strokes.map((s) => thin(s).map(([x, y]) => [round1(x * r.height), round1(y * r.height)])),
    canvas: { width: round1(r.width), height: round1(r.height) },
    charset: ui.charset.value,
  };
}

// One request at a time: a newer drawing aborts the older one's request and drops its answer.
async function ask(url, body) {
  const seq = ++requestSeq;
  if (inFlight) inFlight.abort();
  inFlight = new AbortController();
  setStatus("reading");
  try {
    const res = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      signal: inFlight.signal,
    });
    const answer = await res.json().catch(() => ({ detail: `${res.status} ${res.statusText}` }));
    if (!res.ok) throw new Error(describeError(answer.detail) || `${res.status} ${res.statusText}`);
    if (seq !== requestSeq) return null;
    inFlight = null;
    return answer;
  } catch (err) {
    if (err.name === "AbortError" || seq !== requestSeq) return null;
    showError(err);
    return null;
  }
}

// After each stroke (again = false) and on Predict (again = true: say that it read again).
function read(again = false) {
  clearTimeout(liveTimer);
  if (strokes.length === 0) {
    showEmpty("empty");  // an empty pad is never "recognised"
    return;
  }
  return mode === "several" ? readString(again) : predict(again);
}

async function predict(again) {
  const body = { ...inkBody(), top_k: TOP_K, return_input: true };
  const answer = await ask("/api/predict", body);
  if (!answer) return;
  setFeedbackFor({ body, prediction: answer.prediction });
  showAnswer(answer, again);
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

// "O / o" -> "O": the short form, for a sentence.
const shortLabel = (display) => display.split(" / ")[0];

function showAnswer(answer, again = false) {
  lastAnswer = answer;
  lastAgain = again;
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
    if (digit && other && ui.charset.value === "all") {
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

function useCharset(charset) {
  ui.charset.value = charset;
  save(STORE.charset, charset);
  read();
}

function topkItem(guess) {
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

function drawSeen(pixels) {
  const c = ui.seen.getContext("2d");
  const img = c.createImageData(28, 28);
  pixels.forEach((v, i) => {
    img.data.set([v, v, v, 255], 4 * i);
  });
  c.putImageData(img, 0, 0);
  ui.seenFigure.hidden = false;
}

// ---------------------------------------------------------------- several characters

async function readString(again) {
  const body = { ...inkBody(), top_k: TOP_K, alternatives: 5 };
  const answer = await ask("/api/read", body);
  if (!answer) return;
  setReading({ body, answer, shown: answer.characters.map((c) => c.display), again });
}

// A new reading (or none): its text, a box per character, and the corrections start afresh.
function setReading(next) {
  reading = next;
  readShown = null;
  closeCharPanel();
  ui.fixForm.hidden = next === null;
  if (next) ui.fixText.value = next.answer.text;
  showReadFeedbackStatus();
  showReading();
}

// The text as shown now: read, corrected one character at a time, or typed whole.
function readingText() {
  if (reading.typed) return reading.typed;
  let i = 0;
  return [...reading.answer.text].map((ch) => (ch === " " ? ch : reading.shown[i++])).join("");
}

function showReading() {
  ui.copy.disabled = !reading;
  if (!reading) {
    ui.text.textContent = "";
    ui.chars.replaceChildren();
    return;
  }
  const { answer, again } = reading;
  const text = readingText();
  ui.text.textContent = text;
  const n = answer.characters.length;
  ui.chars.replaceChildren(...answer.characters.map((c, i) => charButton(c, i, n)));
  placeChars();
  const doubts = answer.characters.filter((c) => (c.status ?? "ok") !== "ok").length;
  let status = n ? t("readText", n) : t("nothingRead");
  if (doubts) status = `${status}. ${t("doubts", doubts)}`;
  if (again) status = `${t("again", text)} · ${status}`;
  setStatus(null, { text: status, flash: again });
  setStatusActions([]);
}

function charButton(character, i, n) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "char";
  b.dataset.testid = "char";
  b.dataset.index = i;
  const sure = (character.status ?? "ok") === "ok";
  b.classList.toggle("doubt", !sure);
  b.setAttribute("aria-label", t("charLabel", i + 1, n, reading.shown[i], sure));
  b.setAttribute("aria-expanded", String(openChar === i));
  b.setAttribute("aria-controls", "char-panel");
  const label = document.createElement("span");
  label.className = "char-label";
  label.textContent = reading.shown[i];
  b.append(label);
  return b;
}

// The boxes come in the request's CSS pixels; the pad may have been resized since.
function placeChars() {
  if (!reading) return;
  const scale = pad.getBoundingClientRect().height / reading.body.canvas.height;
  const margin = 3;  // px around the ink, so a thin 1 is still a target
  ui.chars.querySelectorAll(".char").forEach((b) => {
    const [x0, y0, x1, y1] = reading.answer.characters[b.dataset.index].box.map((v) => v * scale);
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
  if (!b || b === suppressClick) return;
  const i = Number(b.dataset.index);
  if (openChar === i) closeCharPanel(true);
  else showChar(i);
});

function showChar(i, focus = true) {
  openChar = i;
  const c = reading.answer.characters[i];
  ui.charTitle.textContent = t("charTitle", i + 1, reading.shown[i]);
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
  ui.charPanel.hidden = false;
  for (const b of ui.chars.children) b.setAttribute("aria-expanded", String(Number(b.dataset.index) === i));
  if (!focus) return;
  (ui.alternatives.querySelector("button:not(:disabled)") ?? ui.charOther).focus({ preventScroll: true });
  ui.charPanel.scrollIntoView({ block: "nearest" });
}

function closeCharPanel(refocus = false) {
  const was = openChar;
  openChar = null;
  ui.charPanel.hidden = true;
  for (const b of ui.chars.children) b.setAttribute("aria-expanded", "false");
  if (refocus && was !== null) ui.chars.children[was]?.focus();
}

// The class a character stands for now (after any correction): its display's first letter.
function currentLabel(i) {
  const shown = reading.shown[i];
  const label = reading.answer.characters[i].prediction;
  return shown.toLowerCase() === label.toLowerCase() ? label : shown;
}

ui.alternatives.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && !b.disabled) correctChar(openChar, b.dataset.label);
});
ui.charOther.addEventListener("click", () => {
  if (!ui.charPicker.hidden) {
    closeGrid(ui.charPicker, ui.charOther);
    return;
  }
  openGrid(ui.charPicker, ui.charChoices, ui.charOther, currentLabel(openChar));
});
ui.charChoices.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && !b.disabled) correctChar(openChar, b.dataset.label);
});

// A merged class (C for C and c) keeps the case the text showed; others are what they are.
function shownFor(label, before) {
  if (!MERGED.includes(label.toLowerCase())) return label;
  return before === before.toLowerCase() && before !== before.toUpperCase() ? label.toLowerCase() : label;
}

async function correctChar(i, label) {
  reading.shown[i] = shownFor(label, reading.shown[i]);
  reading.typed = null;
  const focusBack = i;
  closeCharPanel();
  reading.again = false;
  showReading();
  ui.fixText.value = readingText();
  ui.chars.children[focusBack]?.focus();
  await sendRead(readingText(), true);
}

// The whole text, typed: its characters go with the reading's segments when there are as many.
ui.fixForm.addEventListener("submit", (e) => {
  e.preventDefault();
  if (!reading) return;
  const text = ui.fixText.value.trim().replace(/\s+/g, " ");
  if (!text || text === readingText()) {
    readShown = { key: "fixSame" };
    showReadFeedbackStatus();
    return;
  }
  const chars = [...text.replace(/ /g, "")];
  const same = chars.length === reading.answer.characters.length;
  sendRead(text, same).then((saved) => {
    if (!saved) return;
    // The boxes say the typed characters where they are as many; otherwise what was read.
    if (same) reading.shown = chars;
    reading.typed = text;
    reading.again = false;
    showReading();
  });
});

// One at a time: a character corrected before the previous correction's answer came must name
// that correction in `replaces`, so it waits for its id.
function sendRead(text, withSegments) {
  const now = reading;
  const forDrawing = drawing;
  readShown = { key: "feedbackSaving" };
  showReadFeedbackStatus();
  const sending = readQueue.then(() => postRead(now, forDrawing, text, withSegments));
  readQueue = sending.catch(() => {});
  return sending;
}

async function postRead(now, forDrawing, text, withSegments) {
  const { body, answer } = now;
  const earlier = sentRead?.drawing === forDrawing ? sentRead : null;
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
      sentRead = { drawing: forDrawing, id: reply.id, strokes: correction.strokes, canvas: correction.canvas };
    } else {
      error = describeError(reply.detail) || `${res.status} ${res.statusText}`;
    }
  } catch (err) {
    error = err instanceof TypeError ? t("offline") : err.message;
  }
  if (now !== reading) return false;  // the pad changed meanwhile: this status is stale
  readShown = error ? { error } : { key: "feedbackSaved" };
  showReadFeedbackStatus();
  return !error;
}

function showReadFeedbackStatus() {
  const s = readShown;
  const el = ui.readFeedbackStatus;
  el.textContent = !s ? "" : s.error ? t("error", s.error) : t(s.key);
  el.classList.toggle("error", Boolean(s?.error));
  el.setAttribute("role", s?.error ? "alert" : "status");
}

// navigator.clipboard needs a secure context and permission; the old way works without either.
ui.copy.addEventListener("click", async () => {
  if (!reading) return;
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

// ---------------------------------------------------------------- the correction pickers

// A new reading (or none) starts the correction control afresh: a correction always goes with
// the ink of the reading on screen, exactly the body that was sent to /api/predict.
function setFeedbackFor(next) {
  feedbackFor = next;
  feedbackShown = null;
  ui.feedbackBox.hidden = next === null;
  ui.feedback.disabled = false;
  closeGrid(ui.picker, ui.feedback);
  showFeedbackStatus();
}

// The 47 classes as a grid of 8 columns: one Tab stop (roving tabindex), arrows move within.
function buildChoices(container) {
  const classes = modelInfo?.classes ?? [...CLASSES];
  const display = (c) => modelInfo?.display?.[c]
    ?? (MERGED.includes(c.toLowerCase()) && c !== c.toLowerCase() ? `${c} / ${c.toLowerCase()}` : c);
  const rows = [];
  for (let start = 0; start < classes.length; start += PICKER_COLUMNS) {
    const row = document.createElement("div");
    row.setAttribute("role", "row");
    row.className = "choice-row";
    row.append(...classes.slice(start, start + PICKER_COLUMNS).map((c) => {
      const cell = document.createElement("span");
      cell.setAttribute("role", "gridcell");
      const b = document.createElement("button");
      b.type = "button";
      b.tabIndex = -1;
      b.dataset.label = c;
      b.textContent = display(c);
      cell.append(b);
      return cell;
    }));
    rows.push(row);
  }
  container.replaceChildren(...rows);
}

const gridButtons = (container) => [...container.querySelectorAll("button")];

function openGrid(picker, container, opener, same) {
  if (!container.childElementCount) buildChoices(container);
  const buttons = gridButtons(container);
  for (const b of buttons) {
    // Correcting a reading to what it already said is no correction.
    b.disabled = b.dataset.label === same;
    b.title = b.disabled ? t("feedbackSame") : "";
  }
  picker.hidden = false;
  opener.setAttribute("aria-expanded", "true");
  const first = buttons.find((b) => !b.disabled);
  rove(container, first);
  first.focus({ preventScroll: true });
  // All six rows on screen, not only the first one focus would scroll to.
  picker.scrollIntoView({ block: "nearest" });
}

function closeGrid(picker, opener) {
  picker.hidden = true;
  opener.setAttribute("aria-expanded", "false");
}

function rove(container, target) {
  for (const b of gridButtons(container)) b.tabIndex = b === target ? 0 : -1;
}

// Arrows by one and by a row, Home/End within the row, Ctrl+Home/End to the ends; disabled
// cells are stepped over. Enter and Space are the buttons' own.
function gridKeys(e) {
  const container = e.currentTarget;
  const buttons = gridButtons(container);
  const at = buttons.indexOf(document.activeElement);
  if (at < 0) return;
  const row = Math.floor(at / PICKER_COLUMNS) * PICKER_COLUMNS;
  const moves = {
    ArrowRight: [at + 1, 1], ArrowLeft: [at - 1, -1],
    ArrowDown: [at + PICKER_COLUMNS, PICKER_COLUMNS], ArrowUp: [at - PICKER_COLUMNS, -PICKER_COLUMNS],
    Home: e.ctrlKey ? [0, 1] : [row, 1],
    End: e.ctrlKey ? [buttons.length - 1, -1] : [Math.min(row + PICKER_COLUMNS, buttons.length) - 1, -1],
  };
  if (!(e.key in moves)) return;
  e.preventDefault();
  let [i, step] = moves[e.key];
  if (e.key.startsWith("Arrow") && (i < 0 || i >= buttons.length)) return;  // the grid's edge
  while (buttons[i]?.disabled) i += Math.sign(step);  // over the class the model said
  if (!buttons[i]) return;
  rove(container, buttons[i]);
  buttons[i].focus();
}
ui.choices.addEventListener("keydown", gridKeys);
ui.charChoices.addEventListener("keydown", gridKeys);

function showFeedbackStatus() {
  const s = feedbackShown;
  ui.feedbackStatus.textContent = !s ? "" : s.error ? t("error", s.error) : t(s.key);
  ui.feedbackStatus.classList.toggle("error", Boolean(s?.error));
  ui.feedbackStatus.setAttribute("role", s?.error ? "alert" : "status");
}

async function sendFeedback(label) {
  const correcting = feedbackFor;
  if (!correcting) return;
  for (const b of gridButtons(ui.choices)) b.disabled = true;
  feedbackShown = { key: "feedbackSaving" };
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
  if (correcting !== feedbackFor) return;  // the pad changed meanwhile: this status is stale
  feedbackShown = error ? { error } : { key: "feedbackSaved" };
  if (error) {
    openGrid(ui.picker, ui.choices, ui.feedback, correcting.prediction);  // choose again, or try again
  } else {
    closeGrid(ui.picker, ui.feedback);
    ui.feedback.disabled = true;  // one correction per reading
  }
  showFeedbackStatus();
}

ui.feedback.addEventListener("click", () => (ui.picker.hidden
  ? openGrid(ui.picker, ui.choices, ui.feedback, feedbackFor?.prediction)
  : closeGrid(ui.picker, ui.feedback)));
ui.choices.addEventListener("click", (e) => {
  const b = e.target.closest("button");
  if (b && !b.disabled) sendFeedback(b.dataset.label);
});

// ---------------------------------------------------------------- actions

function clearPad() {
  strokes.length = 0;
  current = null;
  activePointer = null;
  tapStart = null;
  drawing++;
  clearTimeout(liveTimer);
  redraw();
  updateButtons();
  showEmpty("empty");
}

function undo() {
  if (strokes.length === 0) return;
  strokes.pop();
  drawing++;
  redraw();
  updateButtons();
  if (strokes.length === 0) showEmpty("empty");
  else read();
}

function updateButtons() {
  ui.undo.disabled = strokes.length === 0;
}

// Several characters keeps the ink (a character on the square pad fits the wide one's left end,
// and "switch to Several characters" reads that same ink); back to one character starts afresh,
// since a string would not fit the square pad and reading it as one character is the mistake.
function setMode(next) {
  if (next === mode) return;
  mode = next;
  drawing++;
  save(STORE.mode, mode);
  if (mode === "one") {
    strokes.length = 0;
    current = null;
  }
  showMode();
  showEmpty(strokes.length ? "reading" : "start");
  updateButtons();
  sizePad();
  if (strokes.length) read();
}

function showMode() {
  document.body.classList.toggle("several", mode === "several");
  ui.modeOne.setAttribute("aria-pressed", String(mode === "one"));
  ui.modeSeveral.setAttribute("aria-pressed", String(mode === "several"));
  ui.title.textContent = tm("title");
  ui.lede.textContent = tm("lede");
  document.title = `emnist-draw: ${tm("title").toLowerCase()}`;
  pad.setAttribute("aria-label", tm("padLabel"));
  ui.hint.textContent = tm("padHint");
  if (statusKey) setStatus(statusKey);
}

ui.modeOne.addEventListener("click", () => setMode("one"));
ui.modeSeveral.addEventListener("click", () => setMode("several"));
ui.predict.addEventListener("click", () => read(true));
ui.clear.addEventListener("click", clearPad);
ui.undo.addEventListener("click", undo);

ui.charset.addEventListener("change", () => {
  save(STORE.charset, ui.charset.value);
  if (strokes.length) read();
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
  } else if (e.key === "Escape" && openChar !== null) {
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

// ---------------------------------------------------------------- language, model, start-up

function applyLanguage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-html]")) el.innerHTML = t(el.dataset.i18nHtml);
  for (const el of document.querySelectorAll("[data-i18n-aria]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAria));
  }
  ui.lang.textContent = t("langButton");
  ui.lang.setAttribute("aria-label", t("langLabel"));
  ui.lang.lang = lang === "en" ? "ru" : "en";
  showMode();
  if (lastAnswer) showAnswer(lastAnswer, lastAgain);
  if (reading) {
    showReading();
    if (openChar !== null) showChar(openChar, false);
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
  if (!modelInfo) return;
  const acc = modelInfo.metrics?.balanced_accuracy;
  ui.modelInfo.textContent = t("model", modelInfo.name, acc ? percent(acc) : null);
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
