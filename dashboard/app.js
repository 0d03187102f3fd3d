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
// the vendor scripts, whose globals (mqtt, uPlot) it uses.

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
  sensors: new Map(), // "gw/sensor" -> {id: the topic's sensor id, msg: sensor state payload}
  sessions: new Map(), // "gw/session" -> {gw, id, reps: Map, holds: Map, summary, t: [], a: [], seen}
  live: null, // key of the session shown live
};

const MAX_TEXT = 120; // characters of a message's text shown; a forged one can be megabytes

const $ = (id) => document.getElementById(id);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const isInt = (v) => Number.isSafeInteger(v);
// A number with `d` decimals and its unit, or "-" for anything that is not a finite number.
const fmt = (v, d = 1, unit = "") => (isNum(v) ? v.toFixed(d) + unit : "-");
// A count (or a 0-based index shown from 1 with add = 1), or "-" for anything but an integer.
const count = (v, add = 0) => (isInt(v) ? String(v + add) : "-");
// A string, cut to MAX_TEXT; anything else is `otherwise`.
const text = (v, otherwise = "-") =>
  typeof v !== "string" || v === "" ? otherwise : v.length > MAX_TEXT ? `${v.slice(0, MAX_TEXT - 1)}…` : v;
// The flags of a rep: an array of strings, else none.
const flagsOf = (r) => (Array.isArray(r.flags) ? r.flags.filter((f) => typeof f === "string").map((f) => text(f)) : []);

// An element with a class, a test id, a column span and children (nodes, or strings:
// those become text nodes, so nothing in them is ever parsed as markup).
function h(tag, { cls, testid, span } = {}, ...children) {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (span) el.colSpan = span;
  if (testid) el.dataset.testid = testid; // a data-* attribute: inert, whatever it holds
  el.append(...children);
  return el;
}

// Put rows in a table body, one by one (spread into replaceChildren, a forged flood of
// them would exceed the arguments a call may take).
function fill(selector, rows) {
  const body = document.querySelector(selector);
  body.replaceChildren();
  for (const row of rows) body.append(row);
}

$("prefix").textContent = `${PREFIX}/#`;

function session(gw, id) {
  const key = `${gw}/${id}`;
  let s = state.sessions.get(key);
  if (!s) {
    s = { key, gw, id, reps: new Map(), holds: new Map(), summary: null, t: [], a: [], seen: new Set(), updated: 0 };
    state.sessions.set(key, s);
  }
  s.updated = Date.now(); // called for a message the page keeps, only
  return s;
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

const client = mqtt.connect(BROKER, {
  protocolVersion: 4, // 3.1.1: every broker speaks it, the embedded one included
  ...(account.broker ? { username: account.username, password: account.password } : {}),
  reconnectPeriod: RECONNECT_MS,
  connectTimeout: CONNECT_TIMEOUT_MS,
  clean: true,
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
      `${PREFIX}/+/sessions/+/live`,
    ],
    { qos: 1 },
  );
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
    } else if (rest[1] === "sensors" && rest.length === 4) {
      state.sensors.set(`${gw}/${rest[2]}`, { id: rest[2], msg });
      renderGateways();
    } else if (rest[1] === "sessions" && rest.length === 4) {
      onSession(gw, rest[2], rest[3], msg);
    }
  } catch (err) {
    // A shape the checks in the handlers did not foresee: the page goes on with the next.
    console.error(`hipsense dashboard: dropped a message on ${topic}:`, err);
  }
});

const ended = (s) => typeof s.summary?.ended_at === "string" && s.summary.ended_at !== "";

function onSession(gw, id, kind, msg) {
  if (kind === "events") {
    const ev = msg.event;
    if (typeof msg.id !== "string" || !isObject(ev)) return;
    const s = session(gw, id);
    if (s.seen.has(msg.id)) return; // QoS 1 may deliver twice: de-duplicate by id
    s.seen.add(msg.id);
    // A rep or hold is placed by its index: one without a whole index has no place.
    if (ev.kind === "rep" && isInt(ev.index)) s.reps.set(ev.index, ev);
    if (ev.kind === "hold" && isInt(ev.index)) s.holds.set(ev.index, ev);
    if (!ended(s)) state.live = s.key;
  } else if (kind === "summary") {
    session(gw, id).summary = msg; // and the live view keeps showing it once ended
  } else if (kind === "live") {
    const { t_s: times, angle_deg: angles } = msg;
    const numbers = (v) => Array.isArray(v) && v.every(isNum);
    if (!numbers(times) || !numbers(angles) || times.length !== angles.length || !times.length) return;
    const s = session(gw, id);
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
    if (!ended(s)) state.live = s.key;
  } else {
    return;
  }
  renderLive();
  renderFinished();
}

// -- rendering ----------------------------------------------------------------------

function renderGateways() {
  const rows = [];
  const byKey = ([x], [y]) => (x < y ? -1 : x > y ? 1 : 0);
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
}

let plot = null;

function renderLive() {
  const s = state.sessions.get(state.live);
  $("live").hidden = !s;
  if (!s) return;
  const reps = [...s.reps.values()].sort((x, y) => x.index - y.index);
  const holds = [...s.holds.values()];
  const sum = s.summary;
  const exercise = typeof sum?.exercise === "string" ? ` · ${text(sum.exercise)}` : "";
  $("live-title").textContent = `${text(s.id)} on ${text(s.gw)}${exercise}${ended(s) ? " (ended)" : ""}`;
  $("rep-count").textContent = String(reps.length + holds.length);
  $("rep-target").textContent = text(sum?.progress, holds.length && !reps.length ? "holds" : "reps");
  const angle = s.a.length ? s.a[s.a.length - 1] : null;
  $("angle-now").textContent = fmt(angle, 0);
  // Time at end range so far: how long the angle has stayed near the typical rep's range.
  const roms = reps
    .map((r) => r.rom_deg)
    .filter(isNum)
    .sort((x, y) => x - y);
  const endRange = roms.length ? 0.8 * roms[Math.floor(roms.length / 2)] : null;
  let held = null;
  if (endRange && s.a.length && angle >= endRange) {
    let i = s.a.length - 1;
    while (i > 0 && s.a[i - 1] >= endRange) i--;
    held = s.t[s.t.length - 1] - s.t[i];
  }
  // With a prescription the summary names the hold ("3 s holds"): count down to it.
  const target = Number((typeof sum?.progress === "string" ? sum.progress : "").match(/([\d.]+) s holds/)?.[1] || 0);
  if (target > 0) {
    $("hold-label").textContent = `hold left of ${target} s`;
    $("hold-now").textContent = held == null ? "-" : fmt(Math.max(0, target - held), 1);
  } else {
    $("hold-label").textContent = "at end range (s)";
    $("hold-now").textContent = fmt(held, 1);
  }
  const last = reps[reps.length - 1];
  const lastFlags = last ? flagsOf(last) : [];
  $("last-flags").textContent = last ? (lastFlags.length ? text(lastFlags.join(", ")) : "ok") : "-";
  $("last-flags").className = lastFlags.length ? "flag" : "";
  const rows = reps
    .slice()
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
        h("td", { cls: "num" }, fmt(r.confidence, 2)),
      );
    });
  fill("#reps tbody", rows);
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
  const done = [...state.sessions.values()].filter(ended);
  done.sort((x, y) => y.summary.ended_at.localeCompare(x.summary.ended_at));
  const rows = done.map((s) => {
    const m = s.summary;
    return h(
      "tr",
      { testid: `finished-${s.id}` },
      h("td", {}, text(s.id)),
      h("td", {}, text(s.gw)),
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
