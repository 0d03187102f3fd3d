// Helpers every part of the board uses to put untrusted message data into the page:
// as text only (textContent and createElement, never markup), numbers only when they
// are finite numbers ("-" otherwise), text cut to a readable length.

export const MAX_TEXT = 120; // characters of a message's text shown; a forged one can be megabytes

export const $ = (id) => document.getElementById(id);
export const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
export const isNum = (v) => typeof v === "number" && Number.isFinite(v);
export const isInt = (v) => Number.isSafeInteger(v);

// A number with `d` decimals and its unit, or "-" for anything that is not a finite
// number. Never "-0": a rest angle of -0.02 deg reads as 0, not as a negative.
export function fmt(v, d = 1, unit = "") {
  if (!isNum(v)) return "-";
  let s = v.toFixed(d);
  if (/^-0(\.0*)?$/.test(s)) s = s.slice(1);
  return s + unit;
}

// A count (or a 0-based index shown from 1 with add = 1), or "-" for anything but an integer.
export const count = (v, add = 0) => (isInt(v) ? String(v + add) : "-");

// A string, cut to MAX_TEXT; anything else is `otherwise`.
export const text = (v, otherwise = "-") =>
  typeof v !== "string" || v === "" ? otherwise : v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT - 1)}…` : v;

// The motion core's flags in a clinician's words (docs/motion.md); one the page does not
// know is shown as its text, cut.
const FLAG_WORDS = {
  too_fast: "moved too fast",
  too_much_range: "went past the target range",
  partial: "short of the target range",
  off_plane: "thigh left the exercise's plane",
  hold_short: "hold too short",
  eccentric_fast: "came back too fast",
  data_gap: "sensor signal dropped during it",
};
export const flagWords = (f) => (Object.hasOwn(FLAG_WORDS, f) ? FLAG_WORDS[f] : text(f));

// The flags of a rep: an array of strings, else none; in words.
export const flagsOf = (r) =>
  Array.isArray(r.flags) ? r.flags.filter((f) => typeof f === "string").map(flagWords) : [];

// An element with a class, a test id, a column span and children (nodes, or strings:
// those become text nodes, so nothing in them is ever parsed as markup).
export function h(tag, { cls, testid, span } = {}, ...children) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (span) el.colSpan = span;
  if (testid) el.dataset.testid = testid; // a data-* attribute: inert, whatever it holds
  el.append(...children);
  return el;
}

// Put children in an element, one by one (spread into replaceChildren, a forged flood of
// them would exceed the arguments a call may take).
export function fill(target, children) {
  const el = typeof target === "string" ? document.querySelector(target) : target;
  el.replaceChildren();
  for (const child of children) el.append(child);
}

// A [low, high] pair of finite numbers, low below high, or null.
export const band = (v) => (Array.isArray(v) && v.length === 2 && v.every(isNum) && v[0] < v[1] ? v : null);

export const byKey = ([x], [y]) => (x < y ? -1 : x > y ? 1 : 0);

// The y range of an angle chart: the data and the target band, at least `minSpan` wide,
// so a patient at rest (a degree of noise) does not look like motion.
export function angleRange(min, max, target, minSpan = 20) {
  let lo = isNum(min) ? min : 0;
  let hi = isNum(max) ? max : 0;
  if (target) {
    lo = Math.min(lo, target[0]);
    hi = Math.max(hi, target[1]);
  }
  if (hi - lo < minSpan) {
    const mid = (hi + lo) / 2;
    lo = mid - minSpan / 2;
    hi = mid + minSpan / 2;
  }
  const pad = (hi - lo) * 0.05;
  return [lo - pad, hi + pad];
}

// A uPlot hook that shades the target band behind the series.
export function bandHook(getBand) {
  return (u) => {
    const b = getBand();
    if (!b) return;
    const top = u.valToPos(b[1], "y", true);
    const bottom = u.valToPos(b[0], "y", true);
    const { ctx } = u;
    ctx.save();
    ctx.fillStyle = "rgba(46, 140, 70, 0.13)";
    ctx.fillRect(u.bbox.left, top, u.bbox.width, bottom - top);
    ctx.restore();
  };
}
