// Supervisor wallboard: agents counted by state, the queue figures with
// colour thresholds and the team grid, live from the WebSocket (today's
// service level and the period figures come from wallboard_reports.js); actions go
// through the supervisor API (each is logged with the supervisor's id on
// the server). Only the actions that apply to an agent's state are offered;
// logging an agent out asks for a confirmation, a forced Not Ready for a
// reason (one of the configured reason codes). Agents show by their
// display name ([[users]] name).
"use strict";

let board = null;
let boardAt = 0;
let socket = null;
let me = null;
// The action waiting for its confirmation: {agent, until}.
let confirming = null;
// A Force Not Ready waiting for its reason: {agent, code}.
let choosing = null;
// The configured Not Ready reason codes: [{code, label}].
let reasonCodes = [];
const CONFIRM_MS = 6000;
const STATES = [["ready", "Ready"], ["reserved", "Ringing"], ["talking", "Talking"],
  ["wrap_up", "Wrap-up"], ["not_ready", "Not Ready"], ["logged_out", "Logged out"]];
// Service level (% answered in threshold) at or above: good, warning.
const SL_GOOD = 80, SL_WARN = 60;
// Longest wait (ms) at or above: warning, bad.
const WAIT_WARN_MS = 20000, WAIT_BAD_MS = 60000;
const SYSTEM_REASONS = {
  login: "just logged in", rona: "missed a call", supervisor: "by a supervisor", restart: "edgecc restarted",
  reject_delay: "rejected a call", device_unreachable: "phone unreachable", cooling_off: "missed calls",
  desktop_gone: "desktop closed",
};

function cell(text, label, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  td.dataset.label = label;
  if (cls) td.className = cls;
  return td;
}

function actionButton(agent, label, run, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = "small" + (cls ? " " + cls : "");
  b.setAttribute("aria-label", label + " " + agent);
  b.addEventListener("click", run);
  return b;
}

async function supervise(agent, path, body, what, method) {
  try {
    await Edge.api(method || "POST", "/agents/" + encodeURIComponent(agent) + "/" + path, body);
    Edge.status(what + " " + agent + ": done", false);
  } catch (e) {
    Edge.status(what + " " + agent + ": " + e.message, true);
  }
}

function reasonText(r) {
  if (!r) return "";
  return r.startsWith("system:") ? (SYSTEM_REASONS[r.slice(7)] || r.slice(7).replace(/_/g, " ")) : r;
}

function renderCounts() {
  const el = Edge.$("counts");
  el.innerHTML = "";
  for (const [state, label] of STATES) {
    const n = board.agents.filter((a) => a.state === state).length;
    const span = document.createElement("span");
    span.className = "badge " + state;
    span.dataset.state = state;
    span.textContent = label + " " + n;
    el.appendChild(span);
  }
}

function renderQueues(elapsed) {
  const q = Edge.$("queues");
  q.innerHTML = "";
  for (const queue of board.queues) {
    const tr = document.createElement("tr");
    tr.dataset.queue = queue.queue_id;
    const th = document.createElement("th"); th.scope = "row"; th.textContent = queue.queue_id;
    // Today's, from the reports (wallboard_reports.js): abandons and
    // time-outs count, with the queue's own threshold.
    const today = WallFigures.serviceLevel(queue.queue_id);
    const pct = today ? today.pct : null;
    const sl = today ? today.text : "—";
    const slClass = pct == null ? "" : pct >= SL_GOOD ? " good" : pct >= SL_WARN ? " warn" : " bad";
    const wait = queue.waiting ? queue.longest_wait_ms + elapsed : 0;
    const waitClass = !queue.waiting ? "" : wait >= WAIT_BAD_MS ? " bad" : wait >= WAIT_WARN_MS ? " warn" : "";
    tr.append(th, cell(String(queue.waiting), "Waiting", "num" + (queue.waiting ? " warn" : "")),
      cell(queue.waiting ? Edge.clock(wait) : "—", "Longest wait", "num" + waitClass),
      cell(String(queue.ready_agents.length), "Ready", "num"), cell(sl, "Service level", "num" + slClass));
    q.appendChild(tr);
  }
}

// The reason list, "Set Not Ready" and "Cancel" of a Force Not Ready.
function reasonPicker(agent) {
  const sel = document.createElement("select");
  sel.setAttribute("aria-label", "Reason for " + agent);
  sel.className = "small";
  for (const r of reasonCodes) sel.appendChild(new Option(r.label || r.code, r.code));
  sel.appendChild(new Option("By a supervisor (no code)", ""));
  sel.value = choosing.code;
  sel.addEventListener("change", () => { if (choosing) choosing.code = sel.value; });
  const set = actionButton(agent, "Set Not Ready", () => {
    const code = choosing ? choosing.code : "";
    choosing = null;
    const body = code ? { state: "not_ready", reason_code: code } : { state: "not_ready" };
    const label = code ? (reasonCodes.find((r) => r.code === code) || {}).label || code : "by a supervisor";
    supervise(agent, "state", body, "Force Not Ready (reason: " + label + ")");
  }, "danger");
  const cancel = actionButton(agent, "Cancel", () => { choosing = null; render(); });
  cancel.setAttribute("aria-label", "Cancel Not Ready " + agent);
  return [sel, set, cancel];
}

function actionsFor(a) {
  const td = document.createElement("td");
  td.dataset.label = "Actions";
  td.className = "actions";
  const sups = (a.call && a.call.supervisors) || [];
  const mine = sups.find((x) => me && x.supervisor === me.id);
  if (a.call && a.state === "talking") {
    for (const [mode, label] of [["monitor", "Monitor"], ["whisper", "Whisper"], ["barge", "Barge in"]]) {
      const b = actionButton(a.agent_id, label, () => supervise(a.agent_id, mode, undefined, label));
      b.disabled = !!mine && mine.mode === mode;
      td.appendChild(b);
    }
  }
  if (mine) {
    td.appendChild(actionButton(a.agent_id, "Leave call", () => supervise(a.agent_id, "supervision", undefined, "Leave call", "DELETE")));
  }
  if (a.state === "logged_out") return td;
  if ((a.state !== "not_ready" || a.pending) && choosing && choosing.agent === a.agent_id) {
    td.append(...reasonPicker(a.agent_id));
  } else if (a.state !== "not_ready" || a.pending) {
    td.appendChild(actionButton(a.agent_id, "Force Not Ready", () => {
      choosing = { agent: a.agent_id, code: reasonCodes.length ? reasonCodes[0].code : "" };
      render();
      const sel = document.querySelector("select[aria-label='Reason for " + a.agent_id + "']");
      if (sel) sel.focus();
    }));
  }
  if (confirming && confirming.agent === a.agent_id && confirming.until > Date.now()) {
    td.appendChild(actionButton(a.agent_id, "Confirm log out", () => {
      confirming = null;
      supervise(a.agent_id, "state", { state: "logout" }, "Log out");
    }, "danger"));
    td.appendChild(actionButton(a.agent_id, "Cancel", () => { confirming = null; render(); }));
  } else {
    td.appendChild(actionButton(a.agent_id, "Log out", () => {
      confirming = { agent: a.agent_id, until: Date.now() + CONFIRM_MS };
      render();
      const yes = document.querySelector("button[aria-label='Confirm log out " + a.agent_id + "']");
      if (yes) yes.focus();
    }));
  }
  return td;
}

function render() {
  if (!board) return;
  const elapsed = Edge.online ? Date.now() - boardAt : 0;
  renderCounts();
  renderQueues(elapsed);
  const t = Edge.$("team");
  const focused = document.activeElement && document.activeElement.getAttribute("aria-label");
  t.innerHTML = "";
  for (const a of board.agents) {
    const tr = document.createElement("tr");
    tr.dataset.agent = a.agent_id;
    tr.dataset.state = a.state;
    // The display name from [[users]], the id beside it.
    const th = document.createElement("th"); th.scope = "row"; th.textContent = a.name || a.agent_id;
    if (a.name) {
      const id = document.createElement("span");
      id.className = "muted";
      id.textContent = " " + a.agent_id;
      th.appendChild(id);
    }
    const st = document.createElement("td");
    st.dataset.label = "State";
    const badge = document.createElement("span");
    badge.className = "badge " + a.state;
    const reason = reasonText(a.reason);
    badge.textContent = a.state.replace("_", " ") + (reason ? " (" + reason + ")" : "") + (a.pending ? " · pending" : "");
    st.appendChild(badge);
    const sups = (a.call && a.call.supervisors) || [];
    // The consulted agent talks to a colleague, not the caller.
    const who = a.call ? (a.call.consult_from ? "consult with " + a.call.consult_from : a.call.ani) : "";
    const call = a.call ? who + (a.call.held ? " (held)" : "") +
      sups.map((x) => " · " + x.mode + " by " + x.supervisor).join("") : "—";
    const time = a.state === "logged_out" ? "—" : Edge.clock(a.time_in_state_ms + elapsed);
    tr.append(th, st, cell(time, "In state", "num"), cell(call, "Call"), actionsFor(a));
    t.appendChild(tr);
  }
  if (focused) {
    const again = [...t.querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
}

function start(user) {
  if (user.role === "agent") {
    location.href = "/";
    return;
  }
  me = user;
  Edge.$("who").textContent = user.id + " (" + user.role + ")";
  Edge.show("logout", true);
  Edge.show("board", true);
  socket = Edge.events((msg) => {
    if (msg.type === "wallboard") { board = msg; boardAt = Date.now(); WallFigures.onBoard(msg); render(); }
  }, () => render());
  WallFigures.start();
  Edge.api("GET", "/reason_codes").then((r) => { reasonCodes = r.reason_codes || []; },
    (e) => Edge.status("Reason codes: " + e.message, true));
}

Edge.$("logout").addEventListener("click", async () => {
  if (socket) socket.close();
  await Edge.logout();
  location.reload();
});
setInterval(() => {
  if (!board || !Edge.online) return;
  if (confirming && confirming.until <= Date.now()) confirming = null;
  if (!document.activeElement.closest("#team")) render();
}, 1000);
Edge.setupLogin(start);
