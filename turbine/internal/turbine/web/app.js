// turbine's dashboard: one card per circuit and thread pool of /turbine.stream, in the
// spirit of the Hystrix dashboard. Text only reaches the page through textContent.
"use strict";

const HISTORY = 60; // sparkline points (one per stream round)
const cluster = new URLSearchParams(location.search).get("cluster") || "";
const cards = new Map(); // key "type/name" -> {el, fields, history}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function num(v) {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

function fmt(n, digits) {
  return n.toLocaleString("en", { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

// openState reads isCircuitBreakerOpen: a boolean when every host agrees, else turbine's
// map of value to host count.
function openState(v) {
  if (v === true || v === "true") return { state: "true", text: "Open" };
  if (v === false || v === "false" || v === undefined) return { state: "false", text: "Closed" };
  if (typeof v === "object" && v !== null) {
    const open = num(v["true"]), closed = num(v["false"]);
    return { state: "mixed", text: "Open " + open + " / Closed " + closed };
  }
  return { state: "mixed", text: String(v) };
}

function spark(svg, values) {
  const w = 300, h = 40;
  const max = Math.max(1, ...values) * 1.25; // headroom: a steady rate is not glued to the top
  const pts = values.map((v, i) => {
    const x = values.length > 1 ? (i * w) / (HISTORY - 1) : 0;
    return x.toFixed(1) + "," + (h - 2 - (v / max) * (h - 4)).toFixed(1);
  });
  svg.firstChild.setAttribute("points", pts.join(" "));
}

function field(parent, label, cls) {
  const b = el("b", {});
  const s = el("span", cls ? { class: cls } : {}, label + " ", b);
  parent.append(s);
  return b;
}

function circuitCard(name) {
  const f = {};
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 300 40");
  svg.setAttribute("preserveAspectRatio", "none");
  svg.append(document.createElementNS("http://www.w3.org/2000/svg", "polyline"));
  f.rate = el("span", { class: "rate" });
  f.err = el("span", { class: "err" });
  f.status = el("span", { class: "status" });
  f.hosts = el("span", { class: "hosts" });
  const title = el("h3", {});
  title.textContent = name;
  const counts = el("div", { class: "counts" });
  f.success = field(counts, "success");
  f.short = field(counts, "short-circuited");
  f.failure = field(counts, "failure");
  f.timeout = field(counts, "timeout");
  f.rejected = field(counts, "rejected");
  f.fallback = field(counts, "fallback");
  const lat = el("div", { class: "lat" });
  f.mean = field(lat, "mean");
  f.p50 = field(lat, "p50");
  f.p90 = field(lat, "p90");
  f.p99 = field(lat, "p99");
  f.p995 = field(lat, "p99.5");
  f.max = field(lat, "max");
  const card = el("div", { class: "card circuit", "data-name": name },
    title,
    el("div", {}, f.rate, el("span", { class: "unit" }, " req/s  "), f.err, el("span", { class: "unit" }, " errors")),
    el("div", {}, f.status, " ", f.hosts),
    svg, counts, lat);
  return { el: card, f, svg, history: [] };
}

function poolCard(name) {
  const f = {};
  const title = el("h3", {});
  title.textContent = name;
  const counts = el("div", { class: "counts" });
  f.active = field(counts, "active");
  f.queued = field(counts, "queued");
  f.pool = field(counts, "pool size");
  f.executed = field(counts, "executed");
  f.maxActive = field(counts, "max active");
  f.hosts = field(counts, "hosts");
  return { el: el("div", { class: "card pool", "data-name": name }, title, counts), f };
}

function updateCircuit(s) {
  const key = "HystrixCommand/" + s.name;
  let c = cards.get(key);
  if (!c) {
    c = circuitCard(String(s.name));
    cards.set(key, c);
    document.getElementById("circuits").append(c.el);
  }
  const hosts = Math.max(1, num(s.reportingHosts));
  // Rolling window: the property is summed across hosts, so divide by them.
  const windowS = Math.max(1, num(s.propertyValue_metricsRollingStatisticalWindowInMilliseconds) / hosts / 1000);
  const requests = num(s.requestCount);
  const rate = requests / windowS;
  const errPct = requests > 0 ? (100 * num(s.errorCount)) / requests : 0;
  const f = c.f;
  f.rate.textContent = fmt(rate, 1);
  f.err.textContent = fmt(errPct, 1) + " %";
  f.err.dataset.level = errPct >= 50 ? "high" : errPct >= 10 ? "mid" : "low";
  const open = openState(s.isCircuitBreakerOpen);
  f.status.textContent = "Circuit " + open.text;
  f.status.dataset.open = open.state;
  c.el.dataset.open = open.state;
  f.hosts.textContent = "Hosts " + hosts;
  c.el.dataset.hosts = String(hosts);
  f.success.textContent = String(num(s.rollingCountSuccess));
  f.short.textContent = String(num(s.rollingCountShortCircuited));
  f.failure.textContent = String(num(s.rollingCountFailure));
  f.timeout.textContent = String(num(s.rollingCountTimeout));
  f.rejected.textContent = String(num(s.rollingCountThreadPoolRejected) + num(s.rollingCountSemaphoreRejected));
  f.fallback.textContent = String(num(s.rollingCountFallbackSuccess));
  // Latencies are summed across hosts: the mean over hosts is the sum divided by them.
  const lat = s.latencyExecute || {};
  const ms = (v) => fmt(num(v) / hosts, 0) + " ms";
  f.mean.textContent = ms(s.latencyExecute_mean);
  f.p50.textContent = ms(lat["50"]);
  f.p90.textContent = ms(lat["90"]);
  f.p99.textContent = ms(lat["99"]);
  f.p995.textContent = ms(lat["99.5"]);
  f.max.textContent = ms(lat["100"]);
  c.history.push(rate);
  if (c.history.length > HISTORY) c.history.shift();
  spark(c.svg, c.history);
}

function updatePool(s) {
  const key = "HystrixThreadPool/" + s.name;
  let c = cards.get(key);
  if (!c) {
    c = poolCard(String(s.name));
    cards.set(key, c);
    document.getElementById("pools").append(c.el);
  }
  const f = c.f;
  f.active.textContent = String(num(s.currentActiveCount));
  f.queued.textContent = String(num(s.currentQueueSize));
  f.pool.textContent = String(num(s.currentPoolSize));
  f.executed.textContent = String(num(s.rollingCountThreadsExecuted));
  f.maxActive.textContent = String(num(s.rollingMaxActiveThreads));
  f.hosts.textContent = String(num(s.reportingHosts));
}

function setConn(state) {
  const c = document.getElementById("conn");
  c.dataset.state = state;
  document.getElementById("conn-text").textContent = state;
}

function connect() {
  const url = "/turbine.stream" + (cluster ? "?cluster=" + encodeURIComponent(cluster) : "");
  const es = new EventSource(url);
  es.onopen = () => setConn("live");
  es.onerror = () => setConn(es.readyState === EventSource.CLOSED ? "down" : "reconnecting");
  es.onmessage = (ev) => {
    let s;
    try {
      s = JSON.parse(ev.data);
    } catch (e) {
      return;
    }
    if (s === null || typeof s !== "object") return;
    if (s.type === "HystrixCommand") updateCircuit(s);
    else if (s.type === "HystrixThreadPool") updatePool(s);
    document.getElementById("no-circuits").classList.toggle("hidden", document.querySelector(".circuit") !== null);
    document.getElementById("no-pools").classList.toggle("hidden", document.querySelector(".pool") !== null);
  };
}

function cell(v) {
  const td = el("td", {});
  td.textContent = String(v);
  if (typeof v === "boolean") td.dataset.v = String(v);
  return td;
}

// protectedCell marks an instance the registry keeps although it fell silent.
function protectedCell(p) {
  const td = el("td", { class: p ? "protected" : "" });
  td.textContent = p ? "protected" : "-";
  return td;
}

// selects reports whether instance i belongs to cluster c, in the ?cluster= syntax of
// turbine's API: "svc" (plain and every tenant), "svc@tenant", "svc@" (plain only),
// "@tenant" (every service), "" (everything).
function selects(c, i) {
  if (!c) return true;
  const at = c.indexOf("@");
  if (at < 0) return i.service === c;
  const svc = c.slice(0, at);
  return (svc === "" || i.service === svc) && String(i.tenant || "") === c.slice(at + 1);
}

async function refreshInstances() {
  let list;
  try {
    const r = await fetch("/api/instances", { headers: { Accept: "application/json" } });
    if (!r.ok) return;
    list = await r.json();
  } catch (e) {
    return;
  }
  if (!Array.isArray(list)) return;
  const body = document.querySelector("#instances tbody");
  const rows = [];
  const services = new Set();
  for (const i of list) {
    services.add(String(i.service));
    if (i.tenant) services.add(String(i.service) + "@" + String(i.tenant));
    if (!selects(cluster, i)) continue;
    const tr = el("tr", { class: "instance" });
    tr.dataset.verified = String(!!i.verified);
    tr.dataset.protected = String(!!i.protected);
    tr.dataset.tenant = String(i.tenant || "");
    tr.append(cell(i.instanceId), cell(i.service), cell(i.tenant || "-"), cell(i.address + ":" + i.port), cell(!!i.verified),
      cell(i.streamConnected ? "connected" : "not connected"), protectedCell(!!i.protected), cell(i.lastSeen));
    rows.push(tr);
  }
  body.replaceChildren(...rows);
  const nav = document.getElementById("clusters");
  const links = [];
  const all = el("a", { href: "/" });
  all.textContent = "all";
  if (!cluster) all.className = "current";
  links.push(all);
  for (const s of [...services].sort()) {
    const a = el("a", { href: "/?cluster=" + encodeURIComponent(s) });
    a.textContent = s;
    if (s === cluster) a.className = "current";
    links.push(a);
  }
  nav.replaceChildren(...links);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("cluster-name").textContent = cluster ? "cluster " + cluster : "all services";
  connect();
  refreshInstances();
  setInterval(refreshInstances, 2000);
});
