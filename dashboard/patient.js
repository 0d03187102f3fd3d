// The patient view: a patient's trends over sessions, as the patient report has them,
// from the retained summaries alone (the broker keeps every session's). Per exercise:
// range of motion (left and right, against the target band), hold time (against the
// prescribed hold); per session: adherence. A table lists every line of every session.

import { $, band, bandHook, count, fill, fmt, h, isNum, isObject, text } from "./util.js";
import { ended } from "./board.js";

const SIDES = ["left", "right"];
const SIDE_COLOUR = { left: "#b5481b", right: "#1f5fa8" };

const plots = [];

// Patients of the retained summaries: id -> their sessions, oldest first.
export function patients(state) {
  const out = new Map();
  for (const s of state.sessions.values()) {
    const id = s.summary?.patient_id;
    if (typeof id !== "string" || id === "" || typeof s.summary.started_at !== "string") continue;
    if (!out.has(id)) out.set(id, []);
    out.get(id).push(s);
  }
  for (const list of out.values()) list.sort((x, y) => (x.summary.started_at < y.summary.started_at ? -1 : 1));
  return new Map([...out].sort(([x], [y]) => (x < y ? -1 : 1)));
}

export function renderPatientList(state, openPatient) {
  const items = [...patients(state)].map(([id, list]) => {
    const b = h("button", { cls: "patient-link", testid: `patient-${id}` }, text(id), h("span", { cls: "muted" }, ` · ${list.length} session${list.length === 1 ? "" : "s"}`));
    b.type = "button";
    b.addEventListener("click", () => openPatient(id));
    return h("li", {}, b);
  });
  fill("#patients", items);
  $("no-patients").hidden = items.length > 0;
}

const day = (iso) => (typeof iso === "string" ? iso.slice(0, 16).replace("T", " ") : "-");

export function renderPatient(state, id) {
  const section = $("patient");
  while (plots.length) plots.pop().destroy();
  if (id == null) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const list = patients(state).get(id) || [];
  $("patient-title").textContent = `${text(id)}: ${list.length} session${list.length === 1 ? "" : "s"}`;
  const xs = list.map((_, i) => i + 1);
  const label = (i) => (list[i - 1] ? `${i} (${day(list[i - 1].summary.started_at).slice(5, 10)})` : "");

  // Every line of every session, by exercise.
  const byExercise = new Map();
  list.forEach((s, i) => {
    const lines = Array.isArray(s.summary.lines) ? s.summary.lines.filter(isObject) : [];
    for (const line of lines) {
      if (typeof line.exercise !== "string" || !SIDES.includes(line.side)) continue;
      if (!byExercise.has(line.exercise)) byExercise.set(line.exercise, []);
      byExercise.get(line.exercise).push({ i, s, line });
    }
  });

  const charts = [];
  // Adherence per session: the session's own, against what was prescribed for it.
  charts.push(
    chartBox("adherence", "Adherence per session (%)", xs, label, [
      { label: "adherence", stroke: "#2e7d32", values: list.map((s) => (isNum(s.summary.adherence_pct) ? s.summary.adherence_pct : null)) },
    ], () => null, [0, 100]),
  );
  for (const [exercise, rows] of [...byExercise].sort(([x], [y]) => (x < y ? -1 : 1))) {
    const perSide = (field) =>
      SIDES.map((side) => ({
        label: side,
        stroke: SIDE_COLOUR[side],
        values: list.map((_, i) => {
          const r = rows.find((row) => row.i === i && row.line.side === side);
          return r && isNum(r.line[field]) ? r.line[field] : null;
        }),
      })).filter((series) => series.values.some((v) => v !== null));
    const latest = rows[rows.length - 1].line;
    const target = band(latest.target_range_deg);
    charts.push(chartBox(`rom-${exercise}`, `${text(exercise)}: range of motion (deg), left and right${target ? `, target ${fmt(target[0], 0)}-${fmt(target[1], 0)}` : ""}`, xs, label, perSide("mean_rom_deg"), () => target));
    const hold = rows.map((r) => r.line.prescribed_hold_s).filter((v) => isNum(v) && v > 0);
    const holds = perSide("mean_hold_s");
    if (holds.length) {
      const prescribed = hold.length ? hold[hold.length - 1] : null;
      charts.push(chartBox(`hold-${exercise}`, `${text(exercise)}: hold (s)${prescribed ? `, prescribed ${fmt(prescribed, 0)} s` : ""}`, xs, label, holds, () => (prescribed ? [prescribed - 0.05, prescribed + 0.05] : null)));
    }
  }
  fill("#patient-charts", charts.map((c) => c.el));
  for (const c of charts) c.draw();

  const rows = [];
  list.forEach((s, i) => {
    const lines = Array.isArray(s.summary.lines) ? s.summary.lines.filter(isObject) : [];
    for (const line of lines) {
      const side = text(line.side);
      rows.push(
        h(
          "tr",
          { testid: `trend-${s.id}-${text(line.exercise)}-${side}` },
          h("td", {}, String(i + 1)),
          h("td", {}, day(s.summary.started_at)),
          h("td", {}, text(s.id), ended(s) ? "" : " (live)"),
          h("td", {}, text(line.exercise)),
          h("td", {}, side),
          h("td", { cls: "num" }, `${count(line.sets_done)} / ${count(line.prescribed_sets)}`),
          h("td", { cls: "num" }, `${count(line.reps_done)} / ${isNum(line.prescribed_reps) && isNum(line.prescribed_sets) ? line.prescribed_reps * line.prescribed_sets : "-"}`),
          h("td", { cls: "num" }, fmt(line.mean_rom_deg, 1)),
          h("td", { cls: "num" }, fmt(line.max_rom_deg, 1)),
          h("td", { cls: "num" }, fmt(line.mean_hold_s, 1)),
          h("td", { cls: "num" }, fmt(line.adherence_pct, 0, " %")),
        ),
      );
    }
  });
  fill("#trend tbody", rows);
}

// A titled chart over the patient's sessions (x: session number), drawn once in the page.
function chartBox(name, title, xs, label, series, getBand, range) {
  const holder = h("div", { cls: "trend-chart", testid: `chart-${name}` });
  const el = h("figure", {}, h("figcaption", {}, title), holder);
  const draw = () => {
    const width = Math.max(300, Math.min(520, holder.clientWidth || 520));
    const y = range
      ? { range: () => range }
      : {
          range: (u, min, max) => {
            const b = getBand();
            const lo = Math.min(isNum(min) ? min : 0, b ? b[0] : Infinity, 0);
            const hi = Math.max(isNum(max) ? max : 1, b ? b[1] : -Infinity);
            return [lo, hi + (hi - lo) * 0.1 || 1];
          },
        };
    plots.push(
      new uPlot(
        {
          width,
          height: 180,
          scales: { x: { time: false, range: [0.5, Math.max(1.5, xs.length + 0.5)] }, y },
          axes: [{ label: "session", values: (u, ticks) => ticks.map((t) => (Number.isInteger(t) ? label(t) : "")) }, {}],
          series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.stroke, width: 2, spanGaps: true, points: { show: true, size: 7 } }))],
          legend: { show: series.length > 1, live: false },
          hooks: { drawClear: [bandHook(getBand)] },
        },
        [xs, ...series.map((s) => s.values)],
        holder,
      ),
    );
  };
  return { el, draw };
}
