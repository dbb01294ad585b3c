// Kaylee's dashboard: one page, no dependencies. It listens to
// /api/v1/stream (server-sent events) and draws the state it is sent;
// a unit's page also reads its history and events from the API.
"use strict";

const $ = (id) => document.getElementById(id);

// h builds an element; text is always set as text, never as HTML.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("data-")) el.setAttribute(k, v);
    else el[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const short = (s, n = 7) => (s ? String(s).slice(0, n) : "");
const badge = (cls, text) => h("span", { class: "badge " + cls }, text);

function ago(t) {
  if (!t || t.startsWith("0001")) return "–";
  const s = Math.max(0, Math.round((Date.now() - new Date(t)) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m";
  if (s < 172800) return Math.floor(s / 3600) + "h";
  return Math.floor(s / 86400) + "d";
}

function clock(t) {
  return new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
}

function stateDot(state) {
  if (state === "active/running") return "dot ok";
  if (!state) return "dot";
  if (state.startsWith("failed") || state.includes("auto-restart")) return "dot bad";
  return "dot busy";
}

let state = null;
let route = { view: "all" };

function parseRoute() {
  const p = location.hash.replace(/^#\/?/, "").split("/");
  if (p[0] === "units" && p[1]) {
    try {
      return { view: "unit", name: decodeURIComponent(p[1]) };
    } catch (err) {
      return { view: "all" }; // a hash that is not a unit's
    }
  }
  if (["routes", "cluster", "sources", "events"].includes(p[0])) return { view: p[0] };
  return { view: "all" };
}

function show() {
  route = parseRoute();
  const main = document.querySelector("main");
  main.classList.toggle("all", route.view === "all");
  for (const id of ["units", "routes", "cluster", "sources", "events"]) {
    $(id).hidden = !(route.view === "all" || route.view === id);
  }
  showRoutes();
  $("unit").hidden = route.view !== "unit";
  for (const a of document.querySelectorAll("nav a")) {
    a.classList.toggle("active", a.dataset.view === route.view || (route.view === "all" && a.dataset.view === "units"));
  }
  if (route.view === "unit") loadUnit(route.name);
}

// The overview shows the routes only when a unit has domains; #/routes
// always does.
function showRoutes() {
  const none = state !== null && !(state.routes || []).length;
  $("routes").hidden = !(route.view === "routes" || (route.view === "all" && !none));
}

function drawSummary(st) {
  const count = (f) => st.units.filter(f).length;
  // Names of fleet units monder/kaylee created are not stored units.
  const leftAlone = count(leftAloneUnit);
  const n = st.units.length - leftAlone;
  const running = count((u) => u.phase === "running");
  const failed = count((u) => u.phase === "failed");
  const rolledBack = count((u) => u.rolledBack);
  const suspended = count((u) => u.suspended);
  const gitBad = count((u) => (u.gitErrors || []).length > 0);
  let s = `${n} unit${n === 1 ? "" : "s"}, ${running} running`;
  if (failed) s += `, ${failed} failed`;
  if (rolledBack) s += `, ${rolledBack} rolled back`;
  if (suspended) s += `, ${suspended} suspended`;
  if (gitBad) s += `, ${gitBad} with a file failing in git`;
  if (leftAlone) s += ` · ${leftAlone} name${leftAlone === 1 ? "" : "s"} with fleet units of monder/kaylee left alone`;
  s += ` · ${st.machines.length} machine${st.machines.length === 1 ? "" : "s"}`;
  s += st.scheduler ? ` · scheduler ${st.scheduler}` : " · no scheduler leader";
  $("summary").textContent = s;
  const p = $("problems");
  p.hidden = !(st.problems && st.problems.length);
  p.textContent = (st.problems || []).join("; ");
}

// The unit's state (its phase, or rolled back, suspended) as a badge.
const stateBadge = (u) => badge("phase-" + (u.state || u.phase).replace(/ /g, "-"), u.state || u.phase);
// Replicas that serve, of any version (a status of an older scheduler has
// only the running ones).
const serving = (u) => u.serving || u.running;

// The git revision the unit runs: for a rolled-back unit, the one its
// rollback restored.
function runsRevision(u) {
  if (u.rolledBack) return short(u.rolledBack.gitRevision) || "#" + u.rolledBack.revision;
  return short(u.revision);
}

// A name that is not stored, whose fleet units monder/kaylee created: the
// scheduler leaves them alone.
const leftAloneUnit = (u) => u.phase === "left-alone";

// The scheduler's message with what removes the original's units left
// alone (kaylee status says it too; nothing removes those a refused unit
// holds).
function schedulerMessage(u) {
  if (leftAloneUnit(u) && !u.heldBy && u.message) return u.message + "; kaylee migrate --remove-original removes them";
  return u.message;
}

// The message as kaylee status shows it: what holds the unit, its file's
// error in git, the scheduler's message.
function unitMessage(u) {
  const parts = [];
  if (u.stateNote) parts.push(u.stateNote + ".");
  if ((u.gitErrors || []).length) parts.push("its file fails in git (" + u.gitErrors[0] + "); it runs its last good version.");
  if (u.message) parts.push(schedulerMessage(u));
  return parts.join(" ");
}

// Where the unit comes from, on its page.
function unitSource(u) {
  if (leftAloneUnit(u)) return "monder/kaylee (not stored)";
  if (!u.source) return "kaylee run (no git source)";
  return `${u.source} · ${u.file} · ${short(u.revision)}` + (u.rolledBack ? " (not applied: it runs " + runsRevision(u) + ")" : "");
}

function drawUnits(st) {
  const rows = st.units.flatMap((u) => {
    const bad = (u.gitErrors || []).length > 0;
    const src = u.source ? [u.source, bad ? h("span", { class: "gitbad", title: u.gitErrors.join("\n") }, "!") : null] : "–";
    const msg = unitMessage(u);
    const row = h("tr", { "data-unit": u.name, class: msg ? "has-message" : "" },
      h("td", {}, h("a", { href: "#/units/" + encodeURIComponent(u.name) }, u.name)),
      h("td", { class: "phase" }, stateBadge(u)),
      h("td", { class: "count" }, `${u.running}/${u.desired}`, serving(u) !== u.running ? h("span", { class: "serving" }, ` · ${serving(u)} serving`) : null),
      h("td", { class: "mono spec" }, u.specHash || "–"),
      h("td", { class: "mono revision", title: u.rolledBack ? "rolled back; git has " + short(u.revision) : u.revision || "" }, runsRevision(u) || "–"),
      h("td", { class: "source" }, src));
    // The message has a row of its own, the table's whole width, so that
    // it wraps instead of widening the table past its box.
    return msg ? [row, h("tr", { class: "msg", "data-unit-message": u.name }, h("td", { colSpan: 6, class: "message" }, msg))] : [row];
  });
  if (!rows.length) rows.push(h("tr", {}, h("td", { colSpan: 6, class: "muted" }, "no units yet: commit unit files to a source, or kaylee run FILE")));
  $("unit-rows").replaceChildren(...rows);
}

const unitLink = (name) => h("a", { href: "#/units/" + encodeURIComponent(name) }, name);

// A route's endpoints, or the warning that none of its unit's replicas
// serves (kaylee router answers 503).
function routeEndpoints(r) {
  if (!r.endpoints.length) return h("span", { class: "badge noreplica", title: "kaylee router answers 503: " + r.noReplica }, "no replica serves");
  return r.endpoints.flatMap((e, i) => [i ? " " : null, h("span", { class: "mono endpoint" }, e)]);
}

// A route's note (a domain claimed twice, replicas without an address),
// and what the router answers when no replica serves.
const routeNote = (r) => [r.note, r.noReplica ? "kaylee router answers 503 " + JSON.stringify(r.noReplica) : ""].filter(Boolean).join("; ");

// The units' domains, as kaylee router routes them (kaylee routes), in
// the order it matches them.
function drawRoutes(st) {
  const rows = (st.routes || []).map((r) => h("tr", { "data-domain": r.domain, class: r.endpoints.length ? "" : "unserved" },
    h("td", { class: "mono domain" }, r.domain),
    h("td", { class: "unit" }, unitLink(r.unit)),
    h("td", { class: "endpoints" }, routeEndpoints(r)),
    h("td", { class: "wide note" }, routeNote(r) || "–")));
  if (!rows.length) rows.push(h("tr", {}, h("td", { colSpan: 4, class: "muted" }, "no unit has domains")));
  $("route-rows").replaceChildren(...rows);
  showRoutes();
}

// The domains of the stored spec of the unit whose page was last loaded:
// one that another unit claimed first goes to that unit.
let unitDomains = { name: null, domains: [] };

// A unit's domains on its page: its routes, live, and those of its spec
// that another unit gets.
function drawUnitDomains(name) {
  const spec = unitDomains.name === name ? unitDomains.domains : [];
  const rows = ((state && state.routes) || []).filter((r) => r.unit === name || spec.includes(r.domain)).map((r) => h("tr", { "data-domain": r.domain, class: r.endpoints.length ? "" : "unserved" },
    h("td", { class: "mono domain" }, r.domain),
    h("td", { class: "endpoints" }, r.unit === name ? routeEndpoints(r) : [h("span", { class: "badge claimed" }, "routed to another unit"), " ", unitLink(r.unit)]),
    h("td", { class: "wide note" }, routeNote(r) || "–")));
  $("unit-domains-box").hidden = !rows.length;
  $("unit-domains").replaceChildren(...rows);
}

function drawMachines(st) {
  const cards = st.machines.map((m) => h("div", { class: "card machine", "data-machine": m.id },
    h("h4", {}, m.ip || "(no IP)", " ", h("span", { class: "muted mono" }, short(m.id, 8))),
    m.known ? null : h("div", { class: "muted" }, "not listed by fleet"),
    h("div", { class: "chips" }, Object.entries(m.metadata || {}).sort().map(([k, v]) => h("span", { class: "chip" }, k + "=" + v))),
    h("ul", { class: "replicas" }, m.replicas.length ? m.replicas.map((r) => h("li", { "data-replica": r.fleetUnit, title: r.fleetUnit },
      h("span", { class: stateDot(r.state) }), h("a", { href: "#/units/" + encodeURIComponent(r.unit) }, r.unit),
      h("span", { class: "muted" }, r.state || "no state yet"))) : h("li", { class: "muted" }, "no replicas"))));
  $("machines").replaceChildren(...(cards.length ? cards : [h("p", { class: "muted" }, "no machines seen")]));
}

function drawSources(st) {
  const cards = st.sources.map((s) => {
    const a = s.lastAttempt;
    return h("div", { class: "card source", "data-source": s.name },
      h("h4", {}, s.name, " ", a ? badge("result-" + a.result, a.result) : null),
      h("div", { class: "mono muted" }, (s.repo || "") + (s.path ? " · " + s.path : "")),
      h("div", {}, "revision ", h("span", { class: "mono revision", title: s.revision || "" }, short(s.revision) || "none yet"),
        s.ref ? " on " + s.ref : "", s.applied ? " · applied " + ago(s.applied) + " ago" : ""),
      h("div", { class: "muted" }, `${s.units.length} unit${s.units.length === 1 ? "" : "s"}`, s.leader ? " · leader " + s.leader : " · no leader"),
      a && a.message && a.result !== "synced" ? h("div", { class: "muted" }, a.message) : null,
      sourceFreeze(s),
      s.errors.length ? h("ul", { class: "errors" }, s.errors.map((e) => h("li", {}, e.file + (e.line ? ":" + e.line : "") + ": " + e.message))) : null);
  });
  $("source-cards").replaceChildren(...(cards.length ? cards : [h("p", { class: "muted" }, "no git source has synced here")]));
}

// sourceFreeze tells what change freezes hold of a source: the revision
// held (recorded, not applied), and each unit held, with why and until when.
function sourceFreeze(s) {
  const until = (f) => (f.until && !f.until.startsWith("0001") ? "until " + new Date(f.until).toLocaleString() : "until kaylee unfreeze");
  const lines = [];
  if (s.frozen) {
    lines.push(h("div", { class: "frozen", "data-frozen": s.name }, badge("result-frozen", "frozen"), " ",
      h("span", { class: "mono revision", title: s.frozen.revision }, short(s.frozen.revision)), " held ", until(s.frozen), " · ", s.frozen.reason));
  }
  for (const [unit, f] of Object.entries(s.frozenUnits || {}).sort()) {
    lines.push(h("div", { class: "frozen", "data-frozen-unit": unit }, badge("result-frozen", "frozen"), " ",
      h("a", { href: "#/units/" + encodeURIComponent(unit) }, unit), " held ", until(f), " · ", f.reason));
  }
  return lines.length ? lines : null;
}

function eventItem(e) {
  const what = [e.unit, e.fleetUnit ? "(" + e.fleetUnit + ")" : "", e.source ? "from " + e.source + (e.revision ? "@" + short(e.revision) : "") : ""].filter(Boolean).join(" ");
  return h("li", { "data-event": e.id, "data-kind": e.kind },
    h("span", { class: "when", title: e.time }, clock(e.time)),
    h("span", { class: "kind kind-" + e.kind }, e.kind), what, e.message ? h("div", { class: "muted" }, e.message) : null);
}

const maxEvents = 100;
function addEvent(list, e) {
  if (list.querySelector(`[data-event="${CSS.escape(e.id)}"]`)) return;
  list.prepend(eventItem(e));
  while (list.children.length > maxEvents) list.lastChild.remove();
}

async function getJSON(path) {
  const r = await fetch(path, { headers: { Accept: "application/json" } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

async function loadEvents() {
  try {
    const evs = await getJSON("/api/v1/events?limit=" + maxEvents);
    const list = $("event-list");
    list.replaceChildren();
    for (const e of evs) addEvent(list, e);
  } catch (err) {
    $("event-list").replaceChildren(h("li", { class: "muted" }, "events: " + err.message));
  }
}

function drawUnitFields(u) {
  const f = $("unit-fields");
  const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  $("unit-title").replaceChildren(u.name, " ", stateBadge(u));
  f.replaceChildren(
    ...(u.stateNote ? row("Note", u.stateNote) : []),
    ...row("Replicas", `${u.running} running, ${serving(u)} serving, ${u.desired} desired`),
    ...row("Spec", h("span", { class: "mono" }, (u.specHash || "–") + (u.deployed && u.deployed !== u.specHash ? " (deployed: " + u.deployed + ")" : ""))),
    ...(u.engine ? row("Engine", u.engine + " (the spec names none: the scheduler's default engine, or a rollback's)") : []),
    ...row("Source", unitSource(u)),
    ...((u.gitErrors || []).length ? row("Git error", h("span", { class: "gitbad" }, u.gitErrors.join("; ") + " (it runs its last good version)")) : []),
    ...dependsOnRows(u, row),
    ...row("Message", schedulerMessage(u) || "–"),
    ...evidenceRows(u.evidence, row),
    ...row("Updated", ago(u.time) + " ago"));
  $("unit-replicas").replaceChildren(...(u.units || []).map((r) => h("tr", { "data-replica": r.name },
    h("td", { class: "mono" }, r.name), h("td", {}, r.machineIP || short(r.machineID, 8) || "unscheduled"),
    h("td", {}, h("span", { class: stateDot(r.activeState ? r.activeState + "/" + r.subState : "") }), " ", r.activeState ? r.activeState + "/" + r.subState : "–"))));
}

// What the unit depends on, as kaylee status NAME prints it: each
// dependency links to its page, and the ones its rollout waits for say so.
function dependsOnRows(u, row) {
  const deps = u.dependsOn || [];
  if (!deps.length) return [];
  const waiting = new Set((u.waitingFor || "").split(/[ ,]+/).filter(Boolean));
  const items = deps.map((d) => h("span", { "data-depends-on": d }, h("a", { href: "#/units/" + encodeURIComponent(d) }, d), waiting.has(d) ? " (its rollout waits for it)" : ""));
  return row("Depends on", h("span", {}, ...items.flatMap((x, i) => (i ? [", ", x] : [x]))));
}

// A failed rollout's evidence: what the failing replica's machine saw
// (kaylee evidence publishes it), as kaylee status NAME prints it.
function evidenceRows(ev, row) {
  if (!ev) return [];
  const exit = ev.exitCode === "exited" ? "exit status " + ev.exitStatus
    : ev.exitCode === "killed" || ev.exitCode === "dumped" ? "killed by signal " + ev.exitStatus : ev.result ? "result " + ev.result : "–";
  return [
    ...row("Evidence", h("span", {}, exit + (ev.result ? " (systemd: " + ev.result + ")" : "") + ", " + ev.restarts + " restarts; " +
      ev.fleetUnit + " on " + short(ev.machine, 8) + ", " + ago(ev.time) + " ago")),
    ...(ev.probe ? row("Health check", ev.probe) : []),
    ...row("Journal", h("pre", { class: "journal", "data-evidence": ev.fleetUnit }, (ev.journal || []).join("\n") || "(no lines)"))];
}

let unitLoad = 0;
async function loadUnit(name) {
  const my = ++unitLoad;
  try {
    const [u, hist, evs] = await Promise.all([getJSON("/api/v1/units/" + encodeURIComponent(name)),
      getJSON("/api/v1/units/" + encodeURIComponent(name) + "/history"), getJSON("/api/v1/units/" + encodeURIComponent(name) + "/events?limit=50")]);
    if (my !== unitLoad) return;
    drawUnitFields(u);
    unitDomains = { name, domains: (u.spec && u.spec.domains) || [] };
    drawUnitDomains(name);
    $("unit-history").replaceChildren(...hist.slice().reverse().map((e) => h("tr", { "data-revision": e.revision },
      h("td", {}, e.revision), h("td", { class: "mono" }, e.specHash), h("td", {}, badge("outcome-" + e.outcome, e.outcome)),
      h("td", {}, ago(e.time) + " ago"), h("td", { class: "mono" }, e.source ? e.source + "@" + short(e.gitRevision) : "–"),
      h("td", { class: "wide" }, [e.change ? e.change + ": no replica replaced" : "", e.rollbackTo ? "rollback to " + e.rollbackTo : "", e.restart ? "restart " + e.restart : "", e.message || ""].filter(Boolean).join("; ")))));
    if (!hist.length) $("unit-history").replaceChildren(h("tr", {}, h("td", { colSpan: 6, class: "muted" }, "no revisions recorded yet")));
    const list = $("unit-events");
    list.replaceChildren();
    for (const e of evs) addEvent(list, e);
  } catch (err) {
    if (my !== unitLoad) return;
    $("unit-title").textContent = name;
    $("unit-fields").replaceChildren(h("dt", {}, "Error"), h("dd", {}, err.message));
  }
}

function draw(st) {
  state = st;
  drawSummary(st);
  drawUnits(st);
  drawRoutes(st);
  drawMachines(st);
  drawSources(st);
  if (route.view === "unit") {
    const u = st.units.find((x) => x.name === route.name);
    if (u) drawUnitFields(u);
    drawUnitDomains(route.name);
  }
}

let refreshUnit = null;
function connect() {
  const es = new EventSource("/api/v1/stream");
  const live = $("live");
  es.onopen = () => { live.className = "live on"; live.textContent = "live"; loadEvents(); };
  es.onerror = () => {
    live.className = "live off"; live.textContent = "reconnecting…";
    // A refusal (503: too many streams open) ends an EventSource for
    // good; open another later.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 10000);
  };
  es.addEventListener("state", (m) => draw(JSON.parse(m.data)));
  es.addEventListener("problem", (m) => {
    const p = $("problems");
    p.hidden = false;
    p.textContent = JSON.parse(m.data).error;
  });
  es.addEventListener("event", (m) => {
    const e = JSON.parse(m.data);
    addEvent($("event-list"), e);
    if (route.view === "unit" && (e.unit === route.name)) {
      addEvent($("unit-events"), e);
      clearTimeout(refreshUnit);
      refreshUnit = setTimeout(() => loadUnit(route.name), 300);
    }
  });
}

window.addEventListener("hashchange", show);
show();
connect();
