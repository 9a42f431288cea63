// What the page holds between events, in one object every module reads and writes: the ink,
// the request in flight, the answer on screen and the corrections sent.

import { STORE, load } from "./dom.js";

export const S = {
  // Points are kept in units of the pad's height (y from 0 to 1, x from 0 to width / height), so
  // a resize or rotation keeps the drawing, and a character drawn on the square pad keeps its
  // shape on the wide one; they become CSS pixels only when sent.
  strokes: [],
  current: null,          // the stroke being drawn
  activePointer: null,    // one pen at a time: a second finger does not draw
  tapStart: null,         // a press on a character's box, until it moves: {point, char}
  suppressClick: null,    // the character a press started on that became a stroke
  liveTimer: 0,
  requestSeq: 0,          // answers to older drawings are dropped
  inFlight: null,
  lang: load(STORE.lang) === "ru" ? "ru" : "en",
  mode: load(STORE.mode) === "several" ? "several" : "one",
  modelInfo: null,
  statusKey: "start",     // what the status line says, to say it again in another language
  lastAnswer: null,       // one character: the /api/predict answer on screen
  lastAgain: false,       // ... and whether Predict asked for it again
  feedbackFor: null,      // the reading a correction would correct: {body, prediction}
  feedbackShown: null,    // what the correction's status line says: {key} or {error}
  reading: null,          // several characters: {body, answer, shown: [display...], again}
  openChar: null,         // the index of the character whose alternatives are shown
  readShown: null,        // what the string correction's status line says: {key} or {error}
  // A drawing's corrections: each one the server saved replaces the one before, so that only the
  // latest text counts (correcting a 2nd character would otherwise leave the first correction,
  // whose other characters were still wrong, as training data).
  drawing: 0,             // a new stroke, Undo, Clear or a mode switch starts a new drawing
  sentRead: null,         // the last string correction saved: {drawing, id, strokes, canvas}
  readQueue: Promise.resolve(),  // string corrections go one at a time (see sendRead)
  history: [],            // Undo's stack: strokes and edits (history.js)
  // Characters the writer confirmed (a correction, a split, a join): their strokes (the arrays
  // in `strokes`, so an edit elsewhere does not shift them) and label, sent to /api/read as
  // `known` with every read, so that a correction stays while the rest is re-read.
  known: [],
  spaces: new Set(),      // the first stroke of each character a space was inserted after
  charsetOnce: null,
  scratched: 0,
  inkScale: 1,            // the ink's width on a pad grown for a second line (pad.js)           // strokes the last scratch-out erased, said until the next stroke      // a character set a status offered: for this drawing only
};
