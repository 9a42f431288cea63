// The 47 classes as a grid of buttons, one Tab stop moved by the arrow keys.

import { S } from "./state.js";
import { ui } from "./dom.js";
import { t } from "./i18n.js";

const PICKER_COLUMNS = 8;      // the 47 classes in 6 rows: arrow keys move by one or by a row
// The 47 EMNIST-balanced classes, for the correction picker until /api/model says them.
const CLASSES = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabdefghnqrt";
export const MERGED = "cijklmopsuvwxyz";  // one class for both cases: shown as "C / c"

// The 47 classes as a grid of 8 columns: one Tab stop (roving tabindex), arrows move within.
export function buildChoices(container) {
  const classes = S.modelInfo?.classes ?? [...CLASSES];
  const display = (c) => S.modelInfo?.display?.[c]
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
      // Narrow spaces: "W / w" fits an eighth of a phone's width without being clipped.
      b.textContent = display(c).replaceAll(" / ", "\u202F/\u202F");
      b.setAttribute("aria-label", display(c));
      cell.append(b);
      return cell;
    }));
    rows.push(row);
  }
  container.replaceChildren(...rows);
}

export const gridButtons = (container) => [...container.querySelectorAll("button")];

export function openGrid(picker, container, opener, same) {
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

export function closeGrid(picker, opener) {
  picker.hidden = true;
  opener.setAttribute("aria-expanded", "false");
}

export function rove(container, target) {
  for (const b of gridButtons(container)) b.tabIndex = b === target ? 0 : -1;
}

// Arrows by one and by a row, Home/End within the row, Ctrl+Home/End to the ends; disabled
// cells are stepped over. Enter and Space are the buttons' own.
export function gridKeys(e) {
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
