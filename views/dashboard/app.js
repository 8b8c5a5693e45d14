// fraudwatch dashboard: a live alert feed, a user lookup and partition
// health, read from the /v1 API of the process that serves this page.
// Plain browser JavaScript; no build step, nothing loaded from elsewhere.
"use strict";

const tokenKey = "fraudwatch.token";
const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

class Unauthorized extends Error {}

// api fetches path with the bearer token, if one is kept for this tab.
async function api(path, init = {}) {
  const headers = new Headers(init.headers);
  const token = sessionStorage.getItem(tokenKey);
  if (token) headers.set("Authorization", "Bearer " + token);
  const res = await fetch(path, { ...init, headers, cache: "no-store" });
  if (res.status === 401) {
    askToken();
    throw new Unauthorized("a bearer token is required");
  }
  return res;
}

function askToken() {
  $("token-form").hidden = false;
  $("token-forget").hidden = true;
  setStatus("token required", "warn");
}

const time = (s) => new Date(s).toISOString().slice(11, 19);
const money = (n) => Number(n).toLocaleString("en-US", { maximumFractionDigits: 2 });
const currencies = (m) => Object.entries(m || {}).map(([c, n]) => `${money(n)} ${c}`).join(", ");

function setStatus(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = "pill " + (kind || "");
}

// ---- live alert feed ----

const seen = new Set();

function alertItem(a, fresh) {
  const user = el("button", { class: "user", type: "button", title: "look up this user" }, a.user_id);
  user.addEventListener("click", () => lookup(a.user_id));
  return el("li", { class: "alert" + (fresh ? " new" : ""), "data-alert-id": a.alert_id, "data-user-id": a.user_id },
    el("span", { class: "rule" }, a.rule),
    user,
    el("span", { class: "when", title: a.detected_at }, time(a.detected_at)),
    el("span", { class: "detail" },
      `${a.num_txns} txns, ${money(a.total)} (${currencies(a.totals_by_currency)}) in ${time(a.window.start)}–${time(a.window.end)}`));
}

function addAlert(a, fresh) {
  if (seen.has(a.alert_id)) return;
  seen.add(a.alert_id);
  const feed = $("alert-feed");
  feed.prepend(alertItem(a, fresh));
  while (feed.children.length > 200) feed.lastChild.remove();
  $("feed-empty").hidden = true;
}

// follow reads the SSE stream with fetch (EventSource cannot send a token)
// and reconnects with a growing pause.
async function follow(signal) {
  let pause = 500;
  while (!signal.aborted) {
    try {
      const res = await api("/v1/alerts/stream", { signal });
      if (!res.ok || !res.body) throw new Error("stream: HTTP " + res.status);
      $("feed-state").textContent = "live";
      pause = 500;
      fill(signal); // after subscribing, so nothing falls between the two
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          frame(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      if (signal.aborted || e instanceof Unauthorized) return;
    }
    $("feed-state").textContent = "reconnecting…";
    await new Promise((r) => setTimeout(r, pause));
    pause = Math.min(pause * 2, 10000);
  }
}

function frame(text) {
  let event = "message";
  const data = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (event === "alert" && data.length) addAlert(JSON.parse(data.join("\n")), true);
}

async function fill(signal) {
  try {
    const res = await api("/v1/alerts?limit=50", { signal });
    if (!res.ok) return;
    const { alerts } = await res.json();
    for (const a of alerts.slice().reverse()) addAlert(a, false);
  } catch (e) { /* the stream goes on; the next reconnect fills again */ }
}

// ---- user lookup ----

async function lookup(id) {
  id = id.trim();
  if (!id) return;
  $("lookup-input").value = id;
  const msg = $("lookup-message");
  msg.textContent = "Looking up " + id + "…";
  let res;
  try {
    res = await api("/v1/users/" + encodeURIComponent(id));
  } catch (e) {
    msg.textContent = e.message;
    return;
  }
  const body = await res.json();
  if (res.status === 503) {
    msg.textContent = "The view is still recovering; try again in a moment.";
    return;
  }
  if (!res.ok) {
    $("user-result").hidden = true;
    msg.textContent = body.error;
    return;
  }
  msg.textContent = "";
  renderUser(body);
}

function renderUser(u) {
  const level = $("user-level");
  level.textContent = u.risk.level;
  level.className = "level " + u.risk.level;
  $("user-score").textContent = u.risk.score;
  $("user-freshness").textContent =
    `${u.user_id} · table partition ${u.freshness.partition} up to offset ${u.freshness.offset}` +
    (u.stream_time ? ` · stream time ${time(u.stream_time)}` : "");
  $("user-reasons").replaceChildren(...(u.risk.reasons || []).map((r) => el("li", {}, r)));
  const rows = u.windows.map((w) => el("tr", {},
    el("td", {}, time(w.start)), el("td", {}, time(w.end)), el("td", {}, w.num_txns),
    el("td", {}, money(w.total)), el("td", {}, currencies(w.totals_by_currency)), el("td", {}, w.countries.join(", "))));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colSpan: 6, class: "muted" }, "no windows retained")));
  $("user-windows").tBodies[0].replaceChildren(...rows);
  const alerts = u.alerts.map((a) => alertItem(a, false));
  if (!alerts.length) alerts.push(el("li", { class: "muted" }, "no recent alerts"));
  $("user-alerts").replaceChildren(...alerts);
  $("user-result").hidden = false;
}

// ---- partition health ----

function seconds(s) {
  if (s < 0) return "unknown";
  if (s < 1) return "<1 s";
  if (s < 120) return Math.round(s) + " s";
  return Math.round(s / 60) + " min";
}

async function partitions(signal) {
  while (!signal.aborted) {
    try {
      const res = await api("/v1/partitions", { signal });
      renderPartitions(await res.json());
    } catch (e) {
      if (signal.aborted || e instanceof Unauthorized) return;
      setStatus("unreachable", "bad");
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function renderPartitions(p) {
  if (p.recovered) setStatus("ready", "ok");
  else setStatus(`recovering · ${p.remaining_records} records left · ETA ${seconds(p.eta_seconds)}`, "warn");
  $("partitions-summary").textContent =
    `${p.partitions.length} partitions · staleness ${seconds(p.staleness_seconds)}`;
  $("partitions").tBodies[0].replaceChildren(...p.partitions.map((q) => {
    const done = q.status === "running";
    const frac = done ? 1 : q.hwm > 0 ? Math.max(0, 1 - q.remaining / q.hwm) : 0;
    const bar = el("span", { class: "bar" + (done ? "" : " busy") }, el("span", {}));
    bar.firstChild.style.width = (frac * 100).toFixed(1) + "%";
    return el("tr", { "data-partition": q.partition },
      el("td", {}, q.partition), el("td", {}, q.status),
      el("td", {}, bar, done ? "recovered" : `${q.remaining} left`),
      el("td", {}, q.offset), el("td", {}, q.hwm), el("td", {}, q.lag), el("td", {}, seconds(q.staleness_seconds)));
  }));
}

// ---- wiring ----

let running = null;

function start() {
  if (running) running.abort();
  running = new AbortController();
  $("token-forget").hidden = !sessionStorage.getItem(tokenKey);
  follow(running.signal);
  partitions(running.signal);
}

document.addEventListener("DOMContentLoaded", () => {
  $("lookup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    lookup($("lookup-input").value);
  });
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(tokenKey, $("token-input").value.trim());
    $("token-input").value = "";
    $("token-form").hidden = true;
    start();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(tokenKey);
    if (running) running.abort();
    askToken();
  });
  start();
});
