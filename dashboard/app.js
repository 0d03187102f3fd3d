// hipsense reference dashboard: everything here comes from the MQTT contract
// (docs/asyncapi.yaml); no server-side code. Page options (query string):
//   broker  WebSockets URL of the broker      (default ws://<this host>:9001/mqtt)
//   prefix  topic prefix before the gateway id (default hipsense/v1)
// Broker credentials never go in the address (it ends up in the history, in logs, in
// links passed on): the page asks the server that served it (broker.json, same origin,
// not cached) and keeps them in memory only, never in storage. `hipsense dashboard`
// hands out the embedded broker's account there, with the broker URL it belongs to,
// which the page then connects to whatever `broker` says (a crafted link must not send
// the account elsewhere). It does so only for this run's key, which it prints in the
// address's fragment (#k=...: browsers send no fragment to a server, nor in a Referer):
// the page takes the key out of its address at once, keeps it in this tab's history
// entry (so a reload still logs in) and sends it in a header. Another static server has
// no broker.json, and the page connects without credentials.
//
// Every message is untrusted: anyone who may publish under the prefix can forge one, and
// a retained one outlives its sender. So message data reaches the page as text only
// (textContent and createElement, never innerHTML or markup), a number is shown only
// when it is a finite number ("-" otherwise), text is cut to a readable length, and a
// message of the wrong shape is dropped rather than stopping the page. The server's
// Content-Security-Policy (no inline script) is the second line behind this one.
//
// A module (strict, and it may wait for broker.json at the top level); it runs after
// the vendor scripts, whose globals (mqtt, uPlot) it and its modules use: board.js (a
// tile per live session, the alert strip), patient.js (a patient's trends), util.js.
//
// The board connects with a persistent session (clean: false, a client id this browser
// keeps in localStorage, QoS 1 subscriptions), so the broker keeps the events and
// summaries published while the page is closed and hands them over when it is back.

import { ended, renderAlerts, renderBoard } from "./board.js";
import { renderPatient, renderPatientList } from "./patient.js";
import { $, byKey, count, fill, fmt, h, isInt, isNum, isObject, text } from "./util.js";

const KEY_FRAGMENT = "k"; // #k=... in the address `hipsense dashboard` prints
const KEY_HEADER = "X-Hipsense-Key"; // how broker.json gets it back
const KEY_STATE = "hipsenseKey"; // where this tab keeps it: its history entry's state

const params = new URLSearchParams(location.search);
const fragment = new URLSearchParams(location.hash.slice(1));
// This run's key: from the address the first time, from the history entry on a reload.
const kept = isObjectState() && typeof history.state[KEY_STATE] === "string" ? history.state[KEY_STATE] : "";
const KEY = fragment.get(KEY_FRAGMENT) || kept;
if (params.has("user") || params.has("password")) {
  // The old way, and a leak: ignore them, and take them out of the address and history.
  console.warn("hipsense dashboard: ignoring user/password in the address; credentials come from the server");
  params.delete("user");
  params.delete("password");
}
fragment.delete(KEY_FRAGMENT);
{
  // The address without credentials or key, now: nothing copied, bookmarked or shared
  // from it carries them. The key stays in this history entry only.
  const query = params.toString();
  const hash = fragment.toString();
  const entry = { ...(isObjectState() ? history.state : {}), [KEY_STATE]: KEY };
  history.replaceState(entry, "", `${location.pathname}${query ? `?${query}` : ""}${hash ? `#${hash}` : ""}`);
}
function isObjectState() {
  return history.state !== null && typeof history.state === "object";
}

const PREFIX = (params.get("prefix") || "hipsense/v1").replace(/\/$/, "");
const LIVE_WINDOW_S = 30;

const state = {
  gateways: new Map(), // gateway id -> status payload
  sensors: new Map(), // "gw/sensor" -> {gw, id: the topic's sensor id, msg: sensor state payload}
  sessions: new Map(), // "gw/session" -> {key, gw, id, summary, reps: Map, holds: Map, seen: Set, t: [], a: [], lastData}
  prescriptions: new Map(), // patient id -> retained prescription payload
  patient: null, // the patient whose view is open
};

$("prefix").textContent = `${PREFIX}/#`;

function session(gw, id) {
  const key = `${gw}/${id}`;
  let s = state.sessions.get(key);
  if (!s) {
    s = { key, gw, id, reps: new Map(), holds: new Map(), summary: null, t: [], a: [], seen: new Set(), lastData: 0 };
    state.sessions.set(key, s);
  }
  return s;
}

function openPatient(id) {
  state.patient = id;
  renderPatient(state, id);
  $("patient").scrollIntoView({ block: "start" });
}
$("patient-close").addEventListener("click", () => {
  state.patient = null;
  renderPatient(state, null);
});

// This browser's MQTT client id, kept in localStorage (an id, no secret), so the broker
// keeps its session while the page is closed. Held by one tab at a time (a Web Lock):
// a second tab with the same id would take the session over, and the broker would throw
// the first one out, in turns; that tab connects with a clean session of its own.
const CLIENT_ID_KEY = "hipsenseBoardClientId";
const CLIENT_ID = /^hipsense-board-[0-9a-f]{16}$/;

function randomHex(bytes) {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function mqttIdentity() {
  let id = localStorage.getItem(CLIENT_ID_KEY);
  if (!CLIENT_ID.test(id || "")) {
    id = `hipsense-board-${randomHex(8)}`;
    localStorage.setItem(CLIENT_ID_KEY, id);
  }
  if (!navigator.locks) return { clientId: id, clean: false };
  const mine = await new Promise((resolve) => {
    navigator.locks.request(id, { ifAvailable: true }, (lock) => {
      resolve(lock !== null);
      return lock ? new Promise(() => {}) : undefined; // held for the tab's life
    });
  });
  return mine ? { clientId: id, clean: false } : { clientId: `${id}-tab-${randomHex(4)}`, clean: true };
}

// -- the broker connection ----------------------------------------------------------

// How long the page waits for broker.json: a server on this machine answers at once, and
// the page must not hang on one that does not (it then connects without an account).
const ACCOUNT_TIMEOUT_MS = 5000;

// The broker account the server hands this page, {broker, username, password}, where
// `broker` is the URL the account belongs to; or {} when it has none (no key in the
// address, no broker.json: another static server, or a broker without accounts).
async function brokerAccount() {
  if (!KEY) return {}; // without this run's key the server hands out nothing
  try {
    const res = await fetch("broker.json", {
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
      headers: { [KEY_HEADER]: KEY },
      signal: AbortSignal.timeout(ACCOUNT_TIMEOUT_MS),
    });
    if (res.status === 403) {
      console.warn("hipsense dashboard: the server refused the broker account: open the address it printed (this run's)");
    }
    if (!res.ok) return {};
    const body = await res.json();
    const ok =
      isObject(body) &&
      typeof body.broker === "string" &&
      typeof body.username === "string" &&
      typeof body.password === "string";
    return ok ? { broker: body.broker, username: body.username, password: body.password } : {};
  } catch {
    return {};
  }
}

function brokerState(ok, label) {
  const el = $("broker");
  el.textContent = label;
  el.className = `badge ${ok ? "ok" : "bad"}`;
}

// CONNACK codes of a broker that refused the account: 3.1.1 (4, 5) and MQTT 5 (134, 135).
const REFUSED = new Set([4, 5, 134, 135]);
const RETRY_REFUSED_MS = 5000; // the gateway may be making its account: soon, not in a loop
const RECONNECT_MS = 2000; // a broker that went away: try again about as fast as it restarts
const CONNECT_TIMEOUT_MS = 5000; // a broker on this machine or the clinic's LAN answers well within

const account = await brokerAccount();
const asked = params.get("broker");
if (account.broker && asked && asked !== account.broker) {
  console.warn(`hipsense dashboard: ignoring broker=${asked}: the account is for ${account.broker}`);
}
// With an account, its own broker: never one a link names.
const BROKER = account.broker || asked || `ws://${location.hostname || "127.0.0.1"}:9001/mqtt`;
$("broker-url").textContent = BROKER;

const identity = await mqttIdentity();
const client = mqtt.connect(BROKER, {
  protocolVersion: 4, // 3.1.1: every broker speaks it, the embedded one included
  ...(account.broker ? { username: account.username, password: account.password } : {}),
  reconnectPeriod: RECONNECT_MS,
  connectTimeout: CONNECT_TIMEOUT_MS,
  clientId: identity.clientId,
  clean: identity.clean, // persistent: what is published while the page is closed waits for it
  // This URL as it is: mqtt.js would rebuild it from its parts, and drop the brackets of
  // an IPv6 literal (ws://[::1]:9001 becomes ws://::1:9001, which is no URL).
  transformWsUrl: () => BROKER,
});

client.on("connect", () => {
  brokerState(true, "broker connected");
  client.subscribe(
    [
      `${PREFIX}/+/status`,
      `${PREFIX}/+/sensors/+/state`,
      `${PREFIX}/+/sessions/+/events`,
      `${PREFIX}/+/sessions/+/summary`,
      `${PREFIX}/+/patients/+/prescription`,
    ],
    { qos: 1 },
  );
  // QoS 0, as published: a stale angle is of no use once the page is back.
  client.subscribe(`${PREFIX}/+/sessions/+/live`, { qos: 0 });
});
client.on("reconnect", () => brokerState(false, "broker unreachable: reconnecting..."));
client.on("offline", () => brokerState(false, "broker unreachable"));
client.on("error", (err) => {
  if (!REFUSED.has(err.code)) {
    brokerState(false, `broker unreachable: ${err.message}`);
    return;
  }
  // mqtt.js gives up after a refusal. The gateway may have made its account after the
  // page opened (or made a new one): ask the server again, then try again.
  brokerState(false, `broker refused the dashboard: ${err.message}; trying again...`);
  setTimeout(async () => {
    const again = await brokerAccount();
    // An account for another broker than this one (a page opened before the server had
    // an account, on a broker its link named) is not this one's to have.
    const mine = again.broker === BROKER;
    client.options.username = mine ? again.username : undefined;
    client.options.password = mine ? again.password : undefined;
    client.reconnect();
  }, RETRY_REFUSED_MS);
});

client.on("message", (topic, payload) => {
  if (!payload.length) return; // a cleared retained message
  let msg;
  try {
    msg = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    return; // not ours
  }
  if (!isObject(msg)) return; // every message of the contract is an object
  const rest = topic.slice(PREFIX.length + 1).split("/");
  const gw = rest[0];
  try {
    if (rest[1] === "status" && rest.length === 2) {
      state.gateways.set(gw, msg);
      renderGateways();
      renderBoard(state, openPatient);
    } else if (rest[1] === "sensors" && rest.length === 4 && rest[3] === "state") {
      state.sensors.set(`${gw}/${rest[2]}`, { gw, id: rest[2], msg });
      renderGateways();
    } else if (rest[1] === "sessions" && rest.length === 4) {
      onSession(gw, rest[2], rest[3], msg);
    } else if (rest[1] === "patients" && rest.length === 4 && rest[3] === "prescription") {
      if (typeof msg.patient_id === "string") state.prescriptions.set(msg.patient_id, msg);
      renderBoard(state, openPatient);
    }
  } catch (err) {
    // A shape the checks in the handlers did not foresee: the page goes on with the next.
    console.error(`hipsense dashboard: dropped a message on ${topic}:`, err);
  }
});

function onSession(gw, id, kind, msg) {
  if (kind === "events") {
    const ev = msg.event;
    if (typeof msg.id !== "string" || !isObject(ev)) return;
    const s = session(gw, id);
    if (s.seen.has(msg.id)) return; // QoS 1 may deliver twice: de-duplicate by id
    s.seen.add(msg.id);
    s.lastData = Date.now();
    // A rep or hold is placed by its index: one without a whole index has no place.
    if (ev.kind === "rep" && isInt(ev.index)) s.reps.set(ev.index, ev);
    if (ev.kind === "hold" && isInt(ev.index)) s.holds.set(ev.index, ev);
  } else if (kind === "summary") {
    const s = session(gw, id);
    s.summary = msg;
    renderFinished();
    renderPatientList(state, openPatient);
    if (state.patient !== null && msg.patient_id === state.patient) renderPatient(state, state.patient);
  } else if (kind === "live") {
    const { t_s: times, angle_deg: angles } = msg;
    const numbers = (v) => Array.isArray(v) && v.every(isNum);
    if (!numbers(times) || !numbers(angles) || times.length !== angles.length || !times.length) return;
    const s = session(gw, id);
    s.lastData = Date.now();
    for (let i = 0; i < times.length; i++) {
      // One at a time: spreading a forged frame of a million into push() would throw.
      s.t.push(times[i]);
      s.a.push(angles[i]);
    }
    const cut = s.t.findIndex((t) => t >= s.t[s.t.length - 1] - LIVE_WINDOW_S);
    if (cut > 0) {
      s.t.splice(0, cut);
      s.a.splice(0, cut);
    }
  } else {
    return;
  }
  renderBoard(state, openPatient);
}

// A session of an offline gateway leaves the board a minute after its last data.
setInterval(() => renderBoard(state, openPatient), 10_000);

// -- the tables ---------------------------------------------------------------------

function renderGateways() {
  const rows = [];
  for (const [gw, st] of [...state.gateways].sort(byKey)) {
    const online = st.state === "online";
    const badge = () =>
      h("span", { cls: `badge ${online ? "ok" : "bad"}`, testid: `gateway-${gw}` }, online ? "online" : "gateway offline");
    const sensors = [...state.sensors].filter(([k]) => k.startsWith(`${gw}/`)).sort(byKey);
    if (!sensors.length) {
      rows.push(h("tr", {}, h("td", {}, text(gw)), h("td", {}, badge()), h("td", { cls: "muted", span: 5 }, "no sensor yet")));
    }
    for (const [, { id, msg: s }] of sensors) {
      const sensor = typeof s.sensor_id === "string" ? s.sensor_id : id;
      const link =
        s.connected === true && online
          ? h("span", { cls: "badge ok" }, "connected")
          : h("span", { cls: "badge bad", testid: `sensor-${sensor}-down` }, "sensor disconnected");
      rows.push(
        h(
          "tr",
          {},
          h("td", {}, text(gw)),
          h("td", {}, badge()),
          h("td", {}, text(sensor)),
          h("td", {}, link),
          h("td", { cls: "num" }, fmt(s.battery_pct, 0, " %")),
          h("td", { cls: "num" }, fmt(s.rssi_dbm, 0, " dBm")),
          h("td", { cls: "num" }, fmt(s.loss_pct, 1, " %")),
        ),
      );
    }
  }
  fill("#gateways tbody", rows);
  $("no-gateways").hidden = rows.length > 0;
  renderAlerts(state);
}

function renderFinished() {
  const done = [...state.sessions.values()].filter(ended);
  done.sort((x, y) => y.summary.ended_at.localeCompare(x.summary.ended_at));
  const rows = done.map((s) => {
    const m = s.summary;
    return h(
      "tr",
      { testid: `finished-${s.id}` },
      h("td", {}, text(s.id)),
      h("td", {}, text(s.gw)),
      h("td", {}, text(m.patient_id)),
      h("td", {}, text(m.exercise)),
      h("td", { cls: "num" }, count(m.rep_count)),
      h("td", { cls: "num" }, count(m.hold_count)),
      h("td", { cls: "num" }, count(m.set_count)),
      h("td", { cls: "num" }, fmt(m.mean_rom_deg, 1, " deg")),
      h("td", {}, text(m.progress, "no prescription")),
      h("td", { cls: "num" }, fmt(m.adherence_pct, 0, " %")),
    );
  });
  fill("#finished tbody", rows);
  $("no-finished").hidden = done.length > 0;
}
