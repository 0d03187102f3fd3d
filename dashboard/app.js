// hipsense reference dashboard: everything here comes from the MQTT contract
// (docs/asyncapi.yaml); no server-side code. Page options (query string):
//   broker  WebSockets URL of the broker      (default ws://<this host>:9001/mqtt)
//   prefix  topic prefix before the gateway id (default hipsense/v1)
//   user, password  broker credentials, when the broker asks for them
"use strict";

const params = new URLSearchParams(location.search);
const BROKER = params.get("broker") || `ws://${location.hostname || "127.0.0.1"}:9001/mqtt`;
const PREFIX = (params.get("prefix") || "hipsense/v1").replace(/\/$/, "");
const LIVE_WINDOW_S = 30;

const state = {
  gateways: new Map(), // gateway id -> status payload
  sensors: new Map(), // "gw/sensor" -> sensor state payload
  sessions: new Map(), // "gw/session" -> {gw, id, reps: Map, holds: Map, summary, t: [], a: [], seen}
  live: null, // key of the session shown live
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const fmt = (v, d = 1) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));

$("prefix").textContent = `${PREFIX}/#`;
$("broker-url").textContent = BROKER;

function session(gw, id) {
  const key = `${gw}/${id}`;
  let s = state.sessions.get(key);
  if (!s) {
    s = { key, gw, id, reps: new Map(), holds: new Map(), summary: null, t: [], a: [], seen: new Set(), updated: 0 };
    state.sessions.set(key, s);
  }
  return s;
}

// -- the broker connection ----------------------------------------------------------

const client = mqtt.connect(BROKER, {
  protocolVersion: 4, // 3.1.1: every broker speaks it, the embedded one included
  username: params.get("user") || undefined,
  password: params.get("password") || undefined,
  reconnectPeriod: 2000,
  connectTimeout: 5000,
  clean: true,
});

function brokerState(ok, text) {
  const el = $("broker");
  el.textContent = text;
  el.className = `badge ${ok ? "ok" : "bad"}`;
}

client.on("connect", () => {
  brokerState(true, "broker connected");
  client.subscribe(
    [
      `${PREFIX}/+/status`,
      `${PREFIX}/+/sensors/+/state`,
      `${PREFIX}/+/sessions/+/events`,
      `${PREFIX}/+/sessions/+/summary`,
      `${PREFIX}/+/sessions/+/live`,
    ],
    { qos: 1 },
  );
});
client.on("reconnect", () => brokerState(false, "broker unreachable: reconnecting..."));
client.on("offline", () => brokerState(false, "broker unreachable"));
client.on("error", (err) => brokerState(false, `broker unreachable: ${err.message}`));

client.on("message", (topic, payload) => {
  if (!payload.length) return; // a cleared retained message
  let msg;
  try {
    msg = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return; // not ours
  }
  const rest = topic.slice(PREFIX.length + 1).split("/");
  const gw = rest[0];
  if (rest[1] === "status") {
    state.gateways.set(gw, msg);
    renderGateways();
  } else if (rest[1] === "sensors") {
    state.sensors.set(`${gw}/${rest[2]}`, msg);
    renderGateways();
  } else if (rest[1] === "sessions") {
    onSession(gw, rest[2], rest[3], msg);
  }
});

function onSession(gw, id, kind, msg) {
  const s = session(gw, id);
  s.updated = Date.now();
  if (kind === "events") {
    if (s.seen.has(msg.id)) return; // QoS 1 may deliver twice: de-duplicate by id
    s.seen.add(msg.id);
    const ev = msg.event;
    if (ev.kind === "rep") s.reps.set(ev.index, ev);
    if (ev.kind === "hold") s.holds.set(ev.index, ev);
    if (!s.summary?.ended_at) state.live = s.key;
  } else if (kind === "summary") {
    s.summary = msg;
    if (msg.ended_at && state.live === s.key) state.live = s.key; // keep showing it
  } else if (kind === "live") {
    s.t.push(...msg.t_s);
    s.a.push(...msg.angle_deg);
    const cut = s.t.findIndex((t) => t >= s.t[s.t.length - 1] - LIVE_WINDOW_S);
    if (cut > 0) {
      s.t.splice(0, cut);
      s.a.splice(0, cut);
    }
    if (!s.summary?.ended_at) state.live = s.key;
  }
  renderLive();
  renderFinished();
}

// -- rendering ----------------------------------------------------------------------

function renderGateways() {
  const rows = [];
  for (const [gw, st] of [...state.gateways].sort()) {
    const online = st.state === "online";
    const badge = `<span class="badge ${online ? "ok" : "bad"}" data-testid="gateway-${esc(gw)}">${online ? "online" : "gateway offline"}</span>`;
    const sensors = [...state.sensors].filter(([k]) => k.startsWith(`${gw}/`));
    if (!sensors.length) rows.push(`<tr><td>${esc(gw)}</td><td>${badge}</td><td colspan="5" class="muted">no sensor yet</td></tr>`);
    for (const [, s] of sensors) {
      const link = s.connected && online
        ? `<span class="badge ok">connected</span>`
        : `<span class="badge bad" data-testid="sensor-${esc(s.sensor_id)}-down">sensor disconnected</span>`;
      rows.push(
        `<tr><td>${esc(gw)}</td><td>${badge}</td><td>${esc(s.sensor_id)}</td><td>${link}</td>` +
          `<td class="num">${s.battery_pct == null ? "-" : fmt(s.battery_pct, 0) + " %"}</td>` +
          `<td class="num">${s.rssi_dbm == null ? "-" : fmt(s.rssi_dbm, 0) + " dBm"}</td>` +
          `<td class="num">${s.loss_pct == null ? "-" : fmt(s.loss_pct, 1) + " %"}</td></tr>`,
      );
    }
  }
  document.querySelector("#gateways tbody").innerHTML = rows.join("");
  $("no-gateways").hidden = rows.length > 0;
}

let plot = null;

function renderLive() {
  const s = state.sessions.get(state.live);
  $("live").hidden = !s;
  if (!s) return;
  const reps = [...s.reps.values()].sort((x, y) => x.index - y.index);
  const holds = [...s.holds.values()];
  const sum = s.summary;
  $("live-title").textContent = `${s.id} on ${s.gw}${sum ? " · " + sum.exercise : ""}${sum?.ended_at ? " (ended)" : ""}`;
  $("rep-count").textContent = String(reps.length + holds.length);
  $("rep-target").textContent = sum?.progress ? sum.progress : holds.length && !reps.length ? "holds" : "reps";
  const angle = s.a.length ? s.a[s.a.length - 1] : null;
  $("angle-now").textContent = angle == null ? "-" : fmt(angle, 0);
  // Time at end range so far: how long the angle has stayed near the typical rep's range.
  const roms = reps.map((r) => r.rom_deg).sort((x, y) => x - y);
  const endRange = roms.length ? 0.8 * roms[Math.floor(roms.length / 2)] : null;
  let held = null;
  if (endRange && s.a.length && angle >= endRange) {
    let i = s.a.length - 1;
    while (i > 0 && s.a[i - 1] >= endRange) i--;
    held = s.t[s.t.length - 1] - s.t[i];
  }
  // With a prescription the summary names the hold ("3 s holds"): count down to it.
  const target = Number((sum?.progress || "").match(/([\d.]+) s holds/)?.[1] || 0);
  if (target > 0) {
    $("hold-label").textContent = `hold left of ${target} s`;
    $("hold-now").textContent = held == null ? "-" : fmt(Math.max(0, target - held), 1);
  } else {
    $("hold-label").textContent = "at end range (s)";
    $("hold-now").textContent = held == null ? "-" : fmt(held, 1);
  }
  const last = reps[reps.length - 1];
  const flagsNow = last ? (last.flags.length ? last.flags.join(", ") : "ok") : "-";
  $("last-flags").textContent = flagsNow;
  $("last-flags").className = last && last.flags.length ? "flag" : "";
  document.querySelector("#reps tbody").innerHTML = reps
    .slice()
    .reverse()
    .map(
      (r) =>
        `<tr class="${r.flags.length ? "flagged" : ""}" data-testid="rep-${r.index + 1}"><td>${r.index + 1}</td><td>${r.set_index + 1}</td>` +
        `<td class="num">${fmt(r.rom_deg)}</td><td class="num">${fmt(r.hold_s)}</td>` +
        `<td class="num">${fmt(r.concentric_s)}</td><td class="num">${fmt(r.eccentric_s)}</td>` +
        `<td class="flag">${esc(r.flags.join(", "))}</td><td class="num">${fmt(r.confidence, 2)}</td></tr>`,
    )
    .join("");
  drawChart(s);
}

function drawChart(s) {
  const data = [s.t, s.a];
  if (!plot) {
    const width = Math.min(1060, document.body.clientWidth - 40);
    plot = new uPlot(
      {
        width,
        height: 220,
        scales: { x: { time: false } },
        axes: [{ label: "time (s)" }, { label: "angle (deg)" }],
        series: [{}, { label: "angle", stroke: "#1f5fa8", width: 1.5 }],
        legend: { show: false },
      },
      data,
      $("chart"),
    );
  } else {
    plot.setData(data);
  }
}

function renderFinished() {
  const done = [...state.sessions.values()].filter((s) => s.summary?.ended_at);
  done.sort((x, y) => String(y.summary.ended_at).localeCompare(String(x.summary.ended_at)));
  document.querySelector("#finished tbody").innerHTML = done
    .map((s) => {
      const m = s.summary;
      return (
        `<tr data-testid="finished-${esc(s.id)}"><td>${esc(s.id)}</td><td>${esc(s.gw)}</td><td>${esc(m.exercise)}</td>` +
        `<td class="num">${m.rep_count}</td><td class="num">${m.hold_count}</td><td class="num">${m.set_count}</td>` +
        `<td class="num">${m.mean_rom_deg == null ? "-" : fmt(m.mean_rom_deg) + " deg"}</td>` +
        `<td>${esc(m.progress || "no prescription")}</td>` +
        `<td class="num">${m.adherence_pct == null ? "-" : fmt(m.adherence_pct, 0) + " %"}</td></tr>`
      );
    })
    .join("");
  $("no-finished").hidden = done.length > 0;
}
