// The clinic board: a tile per live session and the alert strip.
//
// A tile's counts come from the session's retained summary only (published when the
// session starts and after every rep, hold and set end): a page opened mid-set shows the
// same count as one open since the start, and never counts events itself. Events seen
// since the page opened give only what a summary does not carry: the last rep's flags.

import { $, angleRange, band, bandHook, byKey, count, fill, flagsOf, fmt, h, isInt, isNum, isObject, text } from "./util.js";

const LIVE_QUIET_MS = 60_000; // a session of an offline gateway stays on the board this long after its last data
const LOW_BATTERY_PCT = 20;

export const ended = (s) => typeof s.summary?.ended_at === "string" && s.summary.ended_at !== "";

// The summary line under way: the one with the latest set, else the first still to do.
export function currentLine(sum) {
  const lines = Array.isArray(sum?.lines) ? sum.lines.filter(isObject) : [];
  let best = null;
  let bestSet = -1;
  for (const line of lines) {
    const sets = Array.isArray(line.set_indexes) ? line.set_indexes.filter(isInt) : [];
    const last = sets.length ? Math.max(...sets.slice(0, 1000)) : -1;
    if (last > bestSet) [best, bestSet] = [line, last];
  }
  return best || lines.find((l) => isInt(l.sets_done) && isInt(l.prescribed_sets) && l.sets_done < l.prescribed_sets) || lines[0] || null;
}

// "set 2 of 3 · 7 / 10 reps" from the summary (its line under way), or without a
// prescription "set 2 · 7 reps".
export function progressText(sum) {
  if (!isObject(sum) || !isInt(sum.rep_count)) return "waiting for the session's summary";
  const holds = isInt(sum.hold_count) && sum.hold_count > sum.rep_count;
  const unit = holds ? "holds" : "reps";
  const line = currentLine(sum);
  if (line) {
    const perSet = Array.isArray(line.reps_per_set) ? line.reps_per_set.filter(isInt) : [];
    const inSet = perSet.length ? perSet[perSet.length - 1] : 0;
    const setNo = isInt(line.sets_done) ? Math.max(1, line.sets_done) : null;
    return `set ${count(setNo)} of ${count(line.prescribed_sets)} · ${inSet} / ${count(line.prescribed_reps)} ${unit}`;
  }
  if (holds) return `${sum.hold_count} holds`;
  const perSet = Array.isArray(sum.reps_per_set) ? sum.reps_per_set.filter(isInt) : [];
  const closed = perSet.reduce((a, b) => a + b, 0);
  const open = sum.rep_count - closed;
  if (open > 0 || !perSet.length) return `set ${perSet.length + 1} · ${Math.max(0, open)} reps`;
  return `set ${perSet.length} · ${perSet[perSet.length - 1]} reps`;
}

// The target band of the session's exercise: its summary line's, else the patient's
// retained prescription's line for it.
function targetBand(s, prescriptions) {
  const line = currentLine(s.summary);
  const fromLine = band(line?.target_range_deg);
  if (fromLine) return fromLine;
  const p = prescriptions.get(s.summary?.patient_id);
  const exercise = line?.exercise ?? s.summary?.exercise;
  const lines = Array.isArray(p?.exercises) ? p.exercises.filter(isObject) : [];
  return band(lines.find((l) => l.exercise === exercise)?.range_deg);
}

function prescribedHold(s, prescriptions) {
  const line = currentLine(s.summary);
  if (isNum(line?.prescribed_hold_s) && line.prescribed_hold_s > 0) return line.prescribed_hold_s;
  const p = prescriptions.get(s.summary?.patient_id);
  const lines = Array.isArray(p?.exercises) ? p.exercises.filter(isObject) : [];
  const hold = lines.find((l) => l.exercise === (line?.exercise ?? s.summary?.exercise))?.hold_s;
  return isNum(hold) && hold > 0 ? hold : 0;
}

// Sessions on the board: not ended, and their gateway online (or data of late: one
// whose gateway went away mid-set stays, with its alert, for a minute).
export function liveSessions(state) {
  const now = Date.now();
  return [...state.sessions.values()]
    .filter((s) => !ended(s) && (state.gateways.get(s.gw)?.state === "online" || now - s.lastData < LIVE_QUIET_MS))
    .sort((x, y) => {
      const a = text(x.summary?.started_at, "");
      const b = text(y.summary?.started_at, "");
      return a < b ? -1 : a > b ? 1 : x.key < y.key ? -1 : 1;
    });
}

const tiles = new Map(); // session key -> {el, parts, plot, band}

export function renderBoard(state, openPatient) {
  const live = liveSessions(state);
  for (const key of [...tiles.keys()]) {
    if (!live.some((s) => s.key === key)) {
      tiles.get(key).plot?.destroy();
      tiles.delete(key);
    }
  }
  const els = live.map((s) => {
    let tile = tiles.get(s.key);
    if (!tile) {
      tile = makeTile(s, openPatient);
      tiles.set(s.key, tile);
    }
    updateTile(tile, s, state);
    return tile.el;
  });
  const board = $("tiles");
  // Only when the set of tiles changed: moving a tile would redraw its chart.
  if (els.length !== board.children.length || els.some((el, i) => board.children[i] !== el)) fill(board, els);
  $("no-live").hidden = live.length > 0;
}

function makeTile(s, openPatient) {
  const parts = {
    patient: h("button", { cls: "patient-link", testid: "tile-patient" }),
    what: h("span", { cls: "what", testid: "tile-what" }),
    where: h("span", { cls: "muted where", testid: "tile-where" }),
    count: h("div", { cls: "count", testid: "tile-count" }),
    angle: h("b", { testid: "tile-angle" }, "-"),
    hold: h("b", { testid: "tile-hold" }, "-"),
    holdLabel: h("span", {}, "hold"),
    flags: h("b", { testid: "tile-flags" }, "-"),
    chart: h("div", { cls: "tile-chart" }),
    reps: h("tbody"),
  };
  parts.patient.type = "button";
  parts.patient.addEventListener("click", () => {
    const id = parts.patient.dataset.patient;
    if (id) openPatient(id);
  });
  const el = h(
    "article",
    { cls: "tile", testid: `tile-${s.id}` },
    h("header", {}, parts.patient, parts.what, parts.where),
    parts.count,
    h(
      "div",
      { cls: "kpis" },
      h("div", {}, parts.angle, h("span", {}, "angle (deg)")),
      h("div", {}, parts.hold, parts.holdLabel),
      h("div", { cls: "last" }, parts.flags, h("span", {}, "last rep")),
    ),
    parts.chart,
    h(
      "table",
      { cls: "reps", testid: "reps" },
      h("thead", {}, h("tr", {}, ...["rep", "set", "range (deg)", "hold (s)", "outward (s)", "return (s)", "flags"].map((c) => h("th", {}, c)))),
      parts.reps,
    ),
  );
  return { el, parts, plot: null, band: null };
}

function updateTile(tile, s, state) {
  const { parts } = tile;
  const sum = s.summary;
  const line = currentLine(sum);
  const patient = typeof sum?.patient_id === "string" ? sum.patient_id : "";
  parts.patient.textContent = patient ? text(patient) : "no patient id";
  parts.patient.disabled = !patient;
  parts.patient.dataset.patient = patient; // a data-* attribute: inert
  const exercise = text(line?.exercise ?? sum?.exercise, "exercise not known yet");
  const side = text(line?.side ?? sum?.side, "");
  parts.what.textContent = side ? `${exercise} · ${side}` : exercise;
  parts.where.textContent = `${text(s.id)} on ${text(s.gw)}`;
  parts.count.textContent = progressText(sum);

  const angle = s.a.length ? s.a[s.a.length - 1] : null;
  parts.angle.textContent = fmt(angle, 0);
  tile.band = targetBand(s, state.prescriptions);

  // A hold under way: how long the angle has stayed at end range (the target band's
  // low edge, else most of the typical rep's range), against the prescribed hold.
  const reps = [...s.reps.values()].sort((x, y) => x.index - y.index);
  const roms = reps.map((r) => r.rom_deg).filter(isNum).sort((x, y) => x - y);
  const endRange = tile.band ? tile.band[0] : roms.length ? 0.8 * roms[Math.floor(roms.length / 2)] : null;
  let held = null;
  if (isNum(endRange) && s.a.length && angle >= endRange) {
    let i = s.a.length - 1;
    while (i > 0 && s.a[i - 1] >= endRange) i--;
    held = s.t[s.t.length - 1] - s.t[i];
  }
  const target = prescribedHold(s, state.prescriptions);
  if (target > 0) {
    parts.holdLabel.textContent = `hold left of ${fmt(target, 0)} s`;
    parts.hold.textContent = held == null ? "-" : held >= target ? "held" : fmt(target - held, 1, " s");
  } else {
    parts.holdLabel.textContent = "at end range";
    parts.hold.textContent = held == null ? "-" : fmt(held, 1, " s");
  }

  const last = reps[reps.length - 1];
  const lastFlags = last ? flagsOf(last) : [];
  parts.flags.textContent = last ? (lastFlags.length ? text(lastFlags.join(", ")) : "good") : "-";
  parts.flags.className = lastFlags.length ? "flag" : "";
  const rows = reps
    .slice(-8)
    .reverse()
    .map((r) => {
      const flags = flagsOf(r);
      return h(
        "tr",
        { cls: flags.length ? "flagged" : "", testid: `rep-${r.index + 1}` },
        h("td", {}, count(r.index, 1)),
        h("td", {}, count(r.set_index, 1)),
        h("td", { cls: "num" }, fmt(r.rom_deg)),
        h("td", { cls: "num" }, fmt(r.hold_s)),
        h("td", { cls: "num" }, fmt(r.concentric_s)),
        h("td", { cls: "num" }, fmt(r.eccentric_s)),
        h("td", { cls: "flag" }, text(flags.join(", "), "")),
      );
    });
  fill(parts.reps, rows);
  drawChart(tile, s);
}

function drawChart(tile, s) {
  const data = [s.t, s.a];
  if (!tile.plot) {
    const width = Math.max(280, Math.min(620, (tile.el.clientWidth || 520) - 24));
    tile.plot = new uPlot(
      {
        width,
        height: 170,
        scales: { x: { time: false }, y: { range: (u, min, max) => angleRange(min, max, tile.band) } },
        axes: [{ label: "time (s)" }, { label: "angle (deg)" }],
        series: [{}, { label: "angle", stroke: "#1f5fa8", width: 1.5 }],
        legend: { show: false },
        hooks: { drawClear: [bandHook(() => tile.band)] },
      },
      data,
      tile.parts.chart,
    );
  } else {
    tile.plot.setData(data);
  }
}

// -- alerts -------------------------------------------------------------------------

export function renderAlerts(state) {
  const alerts = [];
  for (const [gw, st] of [...state.gateways].sort(byKey)) {
    if (st.state !== "online") {
      const since = typeof st.time === "string" && !Number.isNaN(Date.parse(st.time)) ? ` since ${new Date(st.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}` : "";
      alerts.push(h("li", { cls: "bad", testid: `alert-gateway-${gw}` }, `Gateway ${text(gw)} is offline${since}: its sessions are not followed until it is back`));
    }
  }
  for (const [key, { gw, id, msg }] of [...state.sensors].sort(byKey)) {
    const online = state.gateways.get(gw)?.state === "online";
    const sensor = typeof msg.sensor_id === "string" ? msg.sensor_id : id;
    // A sensor of an offline gateway is covered by the gateway's alert.
    if (online && msg.connected !== true) {
      const why = typeof msg.error === "string" ? `: ${text(msg.error)}` : "";
      alerts.push(h("li", { cls: "bad", testid: `alert-sensor-${key}` }, `Sensor ${text(sensor)} on ${text(gw)} is disconnected${why}`));
    }
    if (online && isNum(msg.battery_pct) && msg.battery_pct < LOW_BATTERY_PCT) {
      alerts.push(h("li", { cls: "warn", testid: `alert-battery-${key}` }, `Sensor ${text(sensor)} on ${text(gw)}: battery low (${fmt(msg.battery_pct, 0, " %")})`));
    }
  }
  fill("#alerts", alerts);
  $("alerts").hidden = alerts.length === 0;
}
