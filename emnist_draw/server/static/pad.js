// The pad and its ink: sizing for the screen's density, drawing strokes with Pointer Events
// (a mouse, a finger or a pen), and the ink as both endpoints take it.

import { S } from "./state.js";
import { pad, frame, ui } from "./dom.js";
import { read } from "./reading.js";
import { placeChars } from "./several.js";
import { updateButtons } from "./actions.js";
import { pushStroke } from "./history.js";
import { charsetNow, readOptions } from "./hints.js";

const INK_WIDTH = { one: 0.035, several: 0.025 };  // of the pad's height: a string's characters are smaller
export const LIVE_DELAY_MS = 250;     // after a stroke ends; a second stroke soon after cancels the read
const MIN_STEP = 0.003;        // of the pad's height: closer samples add points, not shape
const TAP_SLOP = 0.02;         // of the pad's height: a press on a character that moves less is a tap
const MAX_POINTS_SENT = 1000;  // per stroke, under the API's limit, however long the pen lingers
const ctx = pad.getContext("2d");

export function sizePad() {
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

export function redraw() {
  const unit = pad.height;
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, pad.width, pad.height);
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = INK_WIDTH[S.mode] * unit * S.inkScale;
  ctx.strokeStyle = ctx.fillStyle = getComputedStyle(document.documentElement)
    .getPropertyValue("--pad-ink").trim() || "#111";
  for (const s of S.strokes) drawStroke(s, unit);
  if (S.current) drawStroke(S.current, unit);
  ui.hint.classList.toggle("gone", S.strokes.length > 0 || S.current !== null);
}

// Quadratic curves through the midpoints between samples: smooth without lagging the pen.
export function drawStroke(points, unit) {
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

export function pointOf(event) {
  const r = pad.getBoundingClientRect();
  const clamp = (v, high) => Math.min(high, Math.max(0, v));
  return [clamp((event.clientX - r.left) / r.height, r.width / r.height),
          clamp((event.clientY - r.top) / r.height, 1)];
}

let frameRequested = false;
export function scheduleRedraw() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => { frameRequested = false; redraw(); });
}

// The listeners are on the pad's frame, not the canvas: a stroke may start over a character's
// box (a 7's bar, a t's cross), which is a button above the canvas.
frame.addEventListener("pointerdown", (e) => {
  if (S.activePointer !== null || (e.pointerType === "mouse" && e.button !== 0)) return;
  S.activePointer = e.pointerId;
  clearTimeout(S.liveTimer);
  S.suppressClick = null;
  const char = e.target.closest(".char");
  if (char) {
    // A tap opens the character (its click does), a drag draws: wait for the pen to move.
    S.tapStart = { point: pointOf(e), char };
    return;
  }
  e.preventDefault();
  frame.setPointerCapture(e.pointerId);
  S.current = [pointOf(e)];
  scheduleRedraw();
});

frame.addEventListener("pointermove", (e) => {
  if (e.pointerId !== S.activePointer) return;
  if (S.tapStart) {
    const p = pointOf(e);
    if (Math.hypot(p[0] - S.tapStart.point[0], p[1] - S.tapStart.point[1]) < TAP_SLOP) return;
    S.current = [S.tapStart.point];
    S.suppressClick = S.tapStart.char;
    S.tapStart = null;
    frame.setPointerCapture(e.pointerId);
  }
  if (!S.current) return;
  e.preventDefault();
  // Coalesced events carry every sample the device made between frames: smoother fast strokes.
  const samples = e.getCoalescedEvents ? e.getCoalescedEvents() : [];
  for (const s of samples.length ? samples : [e]) {
    const p = pointOf(s);
    const last = S.current[S.current.length - 1];
    if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= MIN_STEP) S.current.push(p);
  }
  scheduleRedraw();
});

export function endStroke(e) {
  if (e.pointerId !== S.activePointer) return;
  S.activePointer = null;
  S.tapStart = null;  // a tap: the click that follows it opens the character
  // A click after a stroke that began on a character is no tap; later clicks are.
  setTimeout(() => { S.suppressClick = null; });
  if (S.current) {
    S.strokes.push(S.current);
    pushStroke();
    S.scratched = 0;
    if (S.mode === "several" && startsALine(S.current)) growPad();
    S.current = null;
    S.drawing++;
    redraw();
    updateButtons();
    clearTimeout(S.liveTimer);
    S.liveTimer = setTimeout(() => read(), LIVE_DELAY_MS);
  }
}
frame.addEventListener("pointerup", endStroke);
frame.addEventListener("pointercancel", endStroke);
frame.addEventListener("lostpointercapture", endStroke);
// iOS Safari still scrolls on touchmove unless told not to, whatever touch-action says.
frame.addEventListener("touchmove", (e) => e.preventDefault(), { passive: false });
frame.addEventListener("contextmenu", (e) => e.preventDefault());

// The drawing in CSS pixels, as both endpoints take it.
export function inkBody() {
  const r = pad.getBoundingClientRect();
  return {
    strokes: S.strokes.map((s) => thin(s).map(([x, y]) => [round1(x * r.height), round1(y * r.height)])),
    canvas: { width: round1(r.width), height: round1(r.height) },
    charset: charsetNow(),
    ...(S.mode === "several" ? { ...readOptions(), ...knownNow(charsetNow()) } : {}),
  };
}

export const round1 = (v) => Math.round(v * 10) / 10;

// Every k-th point (and the last) of a stroke too long to send whole.
export function thin(stroke) {
  if (stroke.length <= MAX_POINTS_SENT) return stroke;
  const k = Math.ceil(stroke.length / (MAX_POINTS_SENT - 1));
  return stroke.filter((_, i) => i % k === 0).concat([stroke[stroke.length - 1]]);
}

// The confirmed characters as /api/read's `known`: indices into the strokes sent, and only those
// of the set read now (a digit confirmed before "Letters only" would be a 422).
function knownNow(charset) {
  const known = S.known
    .filter((k) => !k.label || charset === "all" || /^[0-9]$/.test(k.label) === (charset === "digits"))
    .map((k) => ({ strokes: k.strokes.map((s) => S.strokes.indexOf(s)), ...(k.label ? { label: k.label } : {}) }))
    .filter((k) => !k.strokes.includes(-1));
  return known.length ? { known } : {};
}

// A stroke that begins wholly below most of the ink starts a second line: then the pad grows
// downward (style.css: body.tall), its ink staying where it is on the screen.
function startsALine(stroke) {
  if (S.strokes.length < 4 || document.body.classList.contains("tall")) return false;
  const top = Math.min(...stroke.map(([, y]) => y));
  const bottoms = S.strokes.slice(0, -1).map((s) => Math.max(...s.map(([, y]) => y))).sort((a, b) => a - b);
  return top > 0.45 && top > bottoms[Math.floor(bottoms.length / 2)];
}

export function growPad() {
  const before = pad.getBoundingClientRect().height;
  document.body.classList.add("tall");
  const after = pad.getBoundingClientRect().height;
  if (after <= before) return;  // a phone held sideways has no room to grow: it stays
  // Points are in units of the pad's height: the same place on the screen is a smaller number.
  const f = before / after;
  for (const s of S.strokes) for (const p of s) { p[0] *= f; p[1] *= f; }
  S.inkScale *= f;  // and the ink as thick as it was
  sizePad();
}

export function shrinkPad() {
  document.body.classList.remove("tall");
  S.inkScale = 1;
}
