// Agent desktop: renders the server's snapshot; every button is one API call.
// The WebSocket (see common.js) sends a fresh snapshot after each change, so
// a refresh or a reconnect shows exactly the same screen. An offer rings
// (a tone made here, a title flash, a notification when the tab is hidden,
// focus on Accept, a countdown); a missed one leaves a banner.
"use strict";

let snap = null;           // last snapshot from the server
let snapAt = 0;            // local time it arrived (for timers)
let socket = null;
// Snapshots pushed on the event stream so far. An action's answer carries
// a snapshot too, made when the server answered; it travels on another
// connection, so a push made later can arrive first (an Accept's answer
// says "reserved" while the push after the phone answered says
// "talking"). An answer is applied only if nothing was pushed while it was
// awaited: the stream pushes again after every change.
let pushed = 0;
let shownCall = null;      // call the inputs were last reset for
let focusedFor = "";       // state+call the focus was last moved for
let directory = null;      // agents and queues for transfer and consult
const BASE_TITLE = document.title;
const BUSY = ["reserved", "talking", "wrap_up"];
const DIRECTORY_REFRESH_MS = 5000;
const TODAY_REFRESH_MS = 60000;
// What the system's Not Ready reasons mean to the agent.
const SYSTEM_REASONS = {
  login: "just logged in", rona: "missed a call", supervisor: "set by a supervisor",
  restart: "edgecc restarted", reject_delay: "rejected a call",
  device_unreachable: "your phone did not take calls", cooling_off: "several missed calls",
  desktop_gone: "your desktop was closed",
};
const MISSED = ["rona", "cooling_off", "device_unreachable"];
const AVAILABILITY = { free: "free", busy: "busy", not_ready: "not ready", logged_out: "logged out" };

// The ring: a North American ring (440 + 480 Hz, 2 s on, 4 s off) made by
// Web Audio, so no sound file is fetched.
const Ring = {
  ctx: null, timer: null, nodes: [],
  unlock() {
    if (!window.AudioContext) return;
    if (!Ring.ctx) Ring.ctx = new AudioContext();
    if (Ring.ctx.state === "suspended") Ring.ctx.resume().catch(() => {});
  },
  burst() {
    const ctx = Ring.ctx;
    if (!ctx) return;
    const gain = ctx.createGain();
    gain.gain.value = 0.12;
    gain.connect(ctx.destination);
    const t = ctx.currentTime;
    Ring.nodes = [440, 480].map((hz) => {
      const o = ctx.createOscillator();
      o.frequency.value = hz;
      o.connect(gain);
      o.start(t);
      o.stop(t + 2);
      return o;
    });
  },
  start() {
    if (Ring.timer) return;
    Ring.unlock();
    Ring.burst();
    Ring.timer = setInterval(Ring.burst, 6000);
  },
  stop() {
    if (!Ring.timer) return;
    clearInterval(Ring.timer);
    Ring.timer = null;
    for (const o of Ring.nodes) { try { o.stop(); } catch (_) { /* ended */ } }
    Ring.nodes = [];
  },
  playing() { return !!Ring.timer && !!Ring.ctx && Ring.ctx.state === "running"; },
};

function serverNow() { return snap ? snap.now_ms + (Date.now() - snapAt) : Date.now(); }

function reasonText(a) {
  if (!a.reason) return "";
  if (a.reason.startsWith("system:")) {
    const key = a.reason.slice(7);
    return SYSTEM_REASONS[key] || key.replace(/_/g, " ");
  }
  const r = (snap.reason_codes || []).find((x) => x.code === a.reason);
  return (r && r.label) || a.reason;
}

// Only the moves the agent's state allows.
function stateOptions(codes, a) {
  const sel = Edge.$("state-select");
  const keep = sel.value;
  sel.innerHTML = "";
  const add = (value, text) => {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; sel.appendChild(o);
  };
  const after = BUSY.includes(a.state) ? " (after this call)" : "";
  if (a.state === "logged_out") {
    add("login", "Log in (Not Ready)");
  } else {
    if (a.state === "not_ready") add("ready", "Ready");
    for (const r of codes) {
      if (a.state === "not_ready" && a.reason === r.code) continue;
      add("not_ready:" + r.code, "Not Ready — " + (r.label || r.code) + after);
    }
    add("logout", "Log out" + after);
  }
  if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
}

function fillData(tbodyId, attached) {
  const body = Edge.$(tbodyId);
  body.innerHTML = "";
  for (const v of attached || []) {
    const tr = document.createElement("tr");
    const k = document.createElement("th"); k.scope = "row"; k.textContent = v.key;
    const d = document.createElement("td"); d.textContent = v.value;
    tr.append(k, d); body.appendChild(tr);
  }
}

// The agents and queues of the transfer picker (the current choice kept).
function fillTargets() {
  const sel = Edge.$("target");
  const keep = sel.value;
  sel.innerHTML = "";
  const pick = document.createElement("option");
  pick.value = ""; pick.textContent = "Choose an agent or a queue…";
  sel.appendChild(pick);
  if (!directory) return;
  const me = snap.agent.agent_id;
  const agents = document.createElement("optgroup"); agents.label = "Agents";
  for (const a of directory.agents) {
    if (a.agent_id === me) continue;
    const o = document.createElement("option");
    o.value = "agent:" + a.agent_id;
    o.textContent = a.agent_id + " — " + (AVAILABILITY[a.availability] || a.availability);
    o.disabled = a.availability === "logged_out";
    agents.appendChild(o);
  }
  const queues = document.createElement("optgroup"); queues.label = "Queues";
  for (const q of directory.queues) {
    const o = document.createElement("option");
    o.value = "queue:" + q.queue_id;
    o.textContent = q.queue_id + " — " + q.waiting + " waiting, " + q.ready_agents + " ready";
    queues.appendChild(o);
  }
  sel.append(agents, queues);
  if ([...sel.options].some((o) => o.value === keep && !o.disabled)) sel.value = keep;
  targetChanged();
}

function targetChanged() {
  const v = Edge.$("target").value;
  Edge.$("transfer").disabled = !v;
  Edge.$("consult").disabled = !v.startsWith("agent:");
  Edge.$("conference-add").disabled = !v.startsWith("agent:");
}

async function loadDirectory() {
  try {
    directory = await Edge.api("GET", "/directory");
    fillTargets();
  } catch (_) { /* the picker keeps its last list */ }
}

function talkKey(callId) { return "edgecc.talk." + callId; }

// The queues the agent serves: calls waiting, and the longest wait ticking
// from the oldest call's start (sent by the server; tick() counts it).
function renderQueues(queues) {
  const body = Edge.$("queue-rows");
  body.innerHTML = "";
  for (const q of queues || []) {
    const tr = document.createElement("tr");
    tr.dataset.queue = q.queue_id;
    tr.dataset.waiting = String(q.waiting);
    if (q.waiting > 0) tr.className = "waiting";
    const name = document.createElement("th"); name.scope = "row"; name.textContent = q.name;
    const n = document.createElement("td"); n.textContent = String(q.waiting);
    const wait = document.createElement("td"); wait.className = "timer";
    if (q.oldest_since_ms != null) wait.dataset.since = String(q.oldest_since_ms);
    else wait.textContent = "—";
    tr.append(name, n, wait); body.appendChild(tr);
  }
  Edge.show("queues-none", !(queues && queues.length));
}

function render() {
  if (!snap) return;
  const a = snap.agent;
  const st = Edge.$("agent-state");
  st.textContent = a.state.replace("_", " ");
  st.className = "badge " + a.state;
  st.dataset.state = a.state;
  const reason = reasonText(a);
  Edge.$("agent-reason").textContent = reason ? "(" + reason + ")" : "";
  Edge.$("agent-pending").textContent = a.pending ? "· change pending after the call" : "";
  // Logged out: the time since the logout, when edgecc saw it (kept across
  // restarts); never the time since edgecc started.
  Edge.show("state-time", a.state !== "logged_out" || a.logged_out_ms != null);
  stateOptions(snap.reason_codes || [], a);

  const c = snap.call;
  const callId = c ? c.call_id : null;
  if (callId !== shownCall) {
    // A new call (or none): nothing typed for the last one stays.
    shownCall = callId;
    Edge.$("wrapup-code").value = "";
    Edge.$("wrapup-select").value = "";
    Edge.$("target").value = "";
    targetChanged();
  }
  const offering = snap.offer && c;
  Edge.show("offer", !!offering);
  if (offering) {
    Edge.$("offer-what").textContent = c.consult_from ? "Consult from" : "Caller";
    Edge.$("offer-ani").textContent = c.consult_from || c.ani;
    Edge.$("offer-queue").textContent = c.queue || "direct";
    fillData("offer-data", c.attached);
    // Accepted here, the phone not picked up yet: say so, and no second accept.
    Edge.show("offer-phone", !!c.waiting_for_phone);
    Edge.$("accept").disabled = !!c.waiting_for_phone;
    if (!c.waiting_for_phone) Ring.start(); else Ring.stop();
    notifyOffer(c);
  } else {
    Ring.stop();
  }
  const onCall = c && !snap.offer;
  Edge.show("call", !!onCall);
  if (onCall) renderCall(a, c);
  Edge.show("dial", a.state === "not_ready");
  renderQueues(snap.queues);
  moveFocus(a, callId);
  tick();
}

function renderCall(a, c) {
  Edge.$("call-what").textContent = c.consult_from ? "Consult with" : "Caller";
  Edge.$("call-ani").textContent = c.consult_from || c.ani || "—";
  Edge.show("call-held", c.held);
  Edge.show("call-muted", c.muted);
  Edge.$("call-interaction").textContent = c.interaction.interaction_id;
  const badge = Edge.$("sync-badge");
  badge.textContent = "CRM: " + c.interaction.sync_state;
  badge.className = "badge " + c.interaction.sync_state;
  badge.dataset.sync = c.interaction.sync_state;
  fillData("call-data", c.attached);
  const talking = a.state === "talking";
  if (talking && c.connected_since_ms != null) {
    sessionStorage.setItem(talkKey(c.call_id), String(c.connected_since_ms));
  }
  Edge.$("hold").disabled = !talking || c.held;
  Edge.$("resume").disabled = !talking || !c.held;
  Edge.$("mute").disabled = !talking || c.muted;
  Edge.$("unmute").disabled = !talking || !c.muted;
  Edge.$("hangup").disabled = !talking;
  Edge.show("call-controls", talking);
  // Whisper or barge only (a silent monitor is not sent), never who.
  const modes = c.supervised || [];
  Edge.show("call-supervised", talking && modes.length > 0);
  Edge.$("call-supervised").textContent = modes.map((m) => "A supervisor is " +
    ({ whisper: "coaching you on", barge: "in" }[m] || m) + " this call.").join(" ");
  renderParties(a, c.parties || [], talking);

  const leg = talking ? c.pending_leg : null;
  const mine = leg && leg.mine;
  Edge.show("transfer-controls", talking && !leg && !c.consult_from);
  if (talking && !leg && !directory) loadDirectory();
  Edge.show("consult-box", !!mine);
  if (mine) {
    const ringing = !leg.answered;
    Edge.$("consult-status").textContent = leg.kind === "consult"
      ? (ringing ? "Calling " + leg.to + " for a consult… the caller is on hold." : "Talking to " + leg.to + "; the caller is on hold.")
      : (ringing ? "Inviting " + leg.to + " to the conference…" : leg.to + " joined.");
    Edge.$("consult-status").dataset.consult = ringing ? "ringing" : "answered";
    Edge.show("consult-complete", leg.kind === "consult");
    Edge.show("consult-conference", leg.kind === "consult");
    Edge.$("consult-complete").disabled = ringing;
    Edge.$("consult-conference").disabled = ringing;
    Edge.show("consult-cancel", leg.kind === "consult");
  }
  Edge.show("wrapup", a.state === "wrap_up");
  if (a.state === "wrap_up") wrapUpCodes((a.detail && a.detail.coding) || {});
}

// The call's queue codes as a select (free text where it lists none);
// "required" is said, and the server refuses a Finish without one.
function wrapUpCodes(coding) {
  const codes = coding.codes || [];
  const sel = Edge.$("wrapup-select");
  const key = codes.map((c) => c.code).join("\n");
  if (sel.dataset.codes !== key) {
    const keep = sel.value;
    sel.innerHTML = "";
    const pick = document.createElement("option");
    pick.value = ""; pick.textContent = "Choose a code…";
    sel.appendChild(pick);
    for (const c of codes) {
      const o = document.createElement("option");
      o.value = c.code; o.textContent = c.label || c.code;
      sel.appendChild(o);
    }
    sel.dataset.codes = key;
    if (codes.some((c) => c.code === keep)) sel.value = keep;
  }
  const listed = codes.length > 0;
  Edge.show("wrapup-select", listed);
  Edge.show("wrapup-code", !listed);
  Edge.$("wrapup-label").htmlFor = listed ? "wrapup-select" : "wrapup-code";
  Edge.$("wrapup-label").textContent = coding.owed ? "Wrap-up code (required)" : "Wrap-up code";
}

function wrapUpCodeField() {
  return Edge.$(Edge.$("wrapup-select").hidden ? "wrapup-code" : "wrapup-select");
}

// The conference's agents, each other one with a Drop button (rebuilt only
// when the list changes, so a click is never lost to a re-render).
function renderParties(a, parties, talking) {
  Edge.show("call-parties", talking && parties.length > 1);
  const box = Edge.$("parties");
  const key = parties.join("\n");
  if (box.dataset.parties === key) return;
  box.dataset.parties = key;
  box.innerHTML = "";
  parties.forEach((p, i) => {
    if (i > 0) box.append(", ");
    const name = document.createElement("span");
    name.className = "party";
    name.textContent = p === a.agent_id ? p + " (you)" : p;
    box.appendChild(name);
    if (p === a.agent_id) return;
    const drop = document.createElement("button");
    drop.type = "button";
    drop.textContent = "Drop";
    drop.setAttribute("aria-label", "Drop " + p + " from the conference");
    drop.addEventListener("click", () => dropParty(p));
    box.append(" ", drop);
  });
}

function dropParty(agent) {
  if (!snap || !snap.call) return;
  const path = "/calls/" + encodeURIComponent(snap.call.call_id) + "/parties/" + encodeURIComponent(agent);
  act(() => Edge.api("DELETE", path), agent + " left the conference");
}

// Focus follows the work: the state list after login, Accept on an offer,
// Hang up once connected, the wrap-up code in wrap-up.
function moveFocus(a, callId) {
  const key = a.state + "/" + (callId || "") + "/" + (snap.offer ? "offer" : "");
  if (key === focusedFor) return;
  focusedFor = key;
  const target = snap.offer ? "accept"
    : a.state === "talking" ? "hangup"
    : a.state === "wrap_up" ? wrapUpCodeField().id
    : "state-select";
  const el = Edge.$(target);
  if (el && !el.disabled) el.focus();
}

let notified = null;
function notifyOffer(c) {
  if (notified === c.call_id) return;
  notified = c.call_id;
  if (!document.hidden || !window.Notification || Notification.permission !== "granted") return;
  const n = new Notification("Incoming call", {
    body: (c.consult_from ? "Consult from " + c.consult_from : "Caller " + c.ani) + " · " + (c.queue || "direct"),
    tag: "edgecc-offer", requireInteraction: true,
  });
  n.onclick = () => { window.focus(); n.close(); };
}

// A missed offer: the agent is Not Ready now and must know why.
function checkMissed(before, after) {
  if (!before || before.agent.state !== "reserved" || !before.call) return;
  const r = after.agent.reason || "";
  if (after.agent.state !== "not_ready" || !MISSED.includes(r.replace("system:", ""))) return;
  const who = before.call.consult_from ? "a consult from " + before.call.consult_from : "a call from " + before.call.ani;
  Edge.$("missed-text").textContent = "You missed " + who + " at " +
    new Date().toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + "; you are now Not Ready.";
  Edge.show("missed", true);
}

function tick() {
  if (!snap) return;
  Edge.$("offer").dataset.ring = Ring.playing() ? "playing" : "silent";
  if (!Edge.online) return;      // nothing counts while edgecc is out of reach
  const elapsed = Date.now() - snapAt;
  const a = snap.agent;
  Edge.$("state-timer").textContent = Edge.clock(a.time_in_state_ms + elapsed);
  const c = snap.call;
  const now = serverNow();
  for (const td of document.querySelectorAll("#queue-rows td[data-since]")) {
    td.textContent = Edge.clock(now - Number(td.dataset.since));
  }
  if (snap.offer && c) {
    const left = c.offer_deadline_ms != null ? c.offer_deadline_ms - now : null;
    Edge.$("offer-countdown").textContent = left == null ? "—" : Edge.clock(left + 999);
    const flash = Math.floor(Date.now() / 1000) % 2 === 0;
    document.title = flash ? "☎ Incoming call · " + (c.consult_from || c.ani) : BASE_TITLE;
  } else {
    document.title = BASE_TITLE;
  }
  if (a.state === "wrap_up" && c) {
    // The talk time is over: keep its final figure on screen.
    const since = Number(sessionStorage.getItem(talkKey(c.call_id)));
    Edge.$("call-timer-label").textContent = "Talk time";
    Edge.$("call-timer").textContent = since ? Edge.clock(a.state_since_ms - since) : "—";
    const until = a.detail && a.detail.until_ms;
    Edge.$("wrapup-countdown").textContent = until ? Edge.clock(until - now + 999) : "—";
  } else {
    Edge.$("call-timer-label").textContent = "Duration";
    Edge.$("call-timer").textContent = c && c.duration_ms != null ? Edge.clock(c.duration_ms + elapsed) : "0:00";
  }
}

// The agent's own figures for today (the reports' data): on start, after
// each change of state (a call handled, a Not Ready ended) and each minute.
async function loadToday() {
  try {
    const t = await Edge.api("GET", "/agent/today");
    Edge.$("fig-calls").textContent = String(t.calls_handled);
    Edge.$("fig-aht").textContent = t.aht_ms == null ? "—" : Edge.clock(t.aht_ms);
    Edge.$("fig-not-ready").textContent = Edge.clock(t.not_ready_ms);
    Edge.$("fig-zone").textContent = ", " + t.time_zone;
  } catch (_) { /* the figures keep their last values */ }
}

function setSnap(s) {
  const before = snap;
  if (!before || before.agent.state !== s.agent.state) loadToday();
  snap = s; snapAt = Date.now();
  checkMissed(before, s);
  // Out of Not Ready (Ready, or a call already offered): the banner is done.
  if (s.agent.state !== "not_ready") Edge.show("missed", false);
  render();
}

async function act(fn, okText) {
  const pushedBefore = pushed;
  try {
    const res = await fn();
    if (res && res.type === "snapshot" && pushed === pushedBefore) setSnap(res);
    if (okText) Edge.status(okText, false);
    return true;
  } catch (e) {
    Edge.status(e.message, true);
    return false;
  }
}

const DONE = {
  accept: "Call accepted", reject: "Call rejected", hold: "Caller on hold", resume: "Caller back from hold",
  mute: "Microphone muted", unmute: "Microphone on", hangup: "Call ended", transfer: "Call transferred",
  consult: "Consult started", consult_complete: "Call transferred", consult_conference: "Conference started",
  consult_cancel: "Consult cancelled; back with the caller", conference_add: "Invited to the conference",
  sticky: "The caller is now your customer", wrap_up: "Wrap-up code saved",
};

function callAction(action, body) {
  if (!snap || !snap.call) return Promise.resolve(false);
  return act(() => Edge.api("POST", "/calls/" + encodeURIComponent(snap.call.call_id) + "/" + action, body), DONE[action]);
}

function target() {
  const v = Edge.$("target").value;
  if (!v) { Edge.status("Choose an agent or a queue first.", true); return null; }
  const [kind, id] = [v.slice(0, v.indexOf(":")), v.slice(v.indexOf(":") + 1)];
  return kind === "queue" ? { target_queue: id } : { target_agent: id };
}

function start(user) {
  if (user.role !== "agent") {
    location.href = "/wallboard";
    return;
  }
  Edge.$("who").textContent = user.id;
  Edge.show("logout", true);
  Edge.show("desk", true);
  socket = Edge.events((msg) => {
    if (msg.type === "snapshot") { pushed += 1; setSnap(msg); }
  }, (up) => { if (up) tick(); });
  setInterval(() => { if (snap && snap.agent.state === "talking" && Edge.online) loadDirectory(); }, DIRECTORY_REFRESH_MS);
  setInterval(() => { if (Edge.online) loadToday(); }, TODAY_REFRESH_MS);
}

function on(id, ev, fn) { Edge.$(id).addEventListener(ev, fn); }
function submit(id, fn) { on(id, "submit", (ev) => { ev.preventDefault(); fn(); }); }

submit("state-form", () => {
  const v = Edge.$("state-select").value;
  const body = v.startsWith("not_ready:") ? { state: "not_ready", reason_code: v.slice(10) } : { state: v };
  act(() => Edge.api("POST", "/agent/state", body), "State changed");
});
on("accept", "click", () => { Ring.stop(); callAction("accept"); });
on("reject", "click", () => { Ring.stop(); callAction("reject"); });
for (const id of ["hold", "resume", "mute", "unmute", "hangup", "consult_complete", "consult_conference", "consult_cancel", "sticky"]) {
  on(id.replace("_", "-"), "click", () => callAction(id));
}
on("target", "change", targetChanged);
// Enter on a closed picker submits its form, as it does in a text field
// (a select has no implicit submission of its own).
for (const id of ["target", "state-select", "wrapup-select"]) {
  on(id, "keydown", (ev) => {
    if (ev.key !== "Enter" || ev.altKey || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
    ev.preventDefault();
    Edge.$(id).form.requestSubmit();
  });
}
submit("transfer-controls", () => { const t = target(); if (t) callAction("transfer", t); });
on("consult", "click", () => { const t = target(); if (t) callAction("consult", t); });
on("conference-add", "click", () => { const t = target(); if (t) callAction("conference_add", t); });
// One Finish: the typed code is saved, then wrap-up ends.
submit("wrapup", async () => {
  const code = wrapUpCodeField().value.trim();
  if (code && !(await callAction("wrap_up", { code }))) return;
  act(() => Edge.api("POST", "/agent/wrap_up/end"), code ? "Wrap-up finished with code " + code : "Wrap-up finished");
});
submit("dial-form", async () => {
  const number = Edge.$("dial-number").value.trim();
  if (!number) { Edge.status("Type the number to dial.", true); return; }
  if (await act(() => Edge.api("POST", "/agent/dial", { number }), "Dialing " + number)) Edge.$("dial-number").value = "";
});
on("open-interaction", "click", async () => {
  if (!snap || !snap.call) return;
  try {
    const i = await Edge.api("GET", "/interactions/" + encodeURIComponent(snap.call.call_id));
    const says = {
      delivered: "is in the CRM (it gave no link to open)", pending: "is on its way to the CRM",
      dead: "was refused by the CRM (an administrator sees it in the dead letters)",
      local: "is kept here: no CRM record yet",
    };
    if (i.crm_link) window.open(i.crm_link, "_blank", "noopener");
    else Edge.status("Interaction " + i.interaction_id + " " + (says[i.sync_state] || i.sync_state) + ".", false);
  } catch (e) { Edge.status(e.message, true); }
});
on("missed-ready", "click", () => act(() => Edge.api("POST", "/agent/state", { state: "ready" }), "You are Ready"));
on("missed-close", "click", () => Edge.show("missed", false));
// Leaving the desktop logs the agent out of routing first: no caller rings
// an empty desk.
on("logout", "click", async () => {
  if (snap && BUSY.includes(snap.agent.state)) {
    Edge.status("Finish your call first (or choose \"Log out (after this call)\" in My state).", true);
    return;
  }
  if (snap && snap.agent.state !== "logged_out") {
    try {
      await Edge.api("POST", "/agent/state", { state: "logout" });
    } catch (e) {
      Edge.status("You are still logged in: " + e.message, true);
      return;
    }
  }
  if (socket) socket.close();
  await Edge.logout();
  location.reload();
});
// Alt+Shift+A accept, R reject, H hold or resume, X hang up.
document.addEventListener("keydown", (ev) => {
  if (!ev.altKey || !ev.shiftKey) return;
  const ids = { KeyA: ["accept"], KeyR: ["reject"], KeyH: ["hold", "resume"], KeyX: ["hangup"] }[ev.code];
  if (!ids) return;
  for (const id of ids) {
    const b = Edge.$(id);
    if (b.offsetParent !== null && !b.disabled) { ev.preventDefault(); b.click(); return; }
  }
});
// Sound and notifications need a gesture first: any click or key unlocks them.
const unlock = () => {
  Ring.unlock();
  if (window.Notification && Notification.permission === "default") Notification.requestPermission().catch(() => {});
};
document.addEventListener("click", unlock);
document.addEventListener("keydown", unlock);
setInterval(tick, 1000);
Edge.setupLogin(start);
