// Supervisor wallboard: the team grid and queue figures, live from the
// WebSocket; actions go through the supervisor API (each is logged with
// the supervisor's id on the server).
"use strict";

let board = null;
let boardAt = 0;
let socket = null;
let me = null;

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function actionButton(agent, label, run) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
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

function render() {
  if (!board) return;
  const elapsed = Date.now() - boardAt;
  const q = Edge.$("queues");
  q.innerHTML = "";
  for (const queue of board.queues) {
    const tr = document.createElement("tr");
    tr.dataset.queue = queue.queue_id;
    const th = document.createElement("th"); th.scope = "row"; th.textContent = queue.queue_id;
    const sl = queue.service_level.percent == null ? "—" : queue.service_level.percent.toFixed(0) + "% in " + (queue.service_level.threshold_ms / 1000) + "s";
    tr.append(th, cell(String(queue.waiting), "num"),
      cell(queue.waiting ? Edge.clock(queue.longest_wait_ms + elapsed) : "—", "num"),
      cell(String(queue.ready_agents.length), "num"), cell(sl, "num"));
    q.appendChild(tr);
  }
  const t = Edge.$("team");
  const focused = document.activeElement && document.activeElement.getAttribute("aria-label");
  t.innerHTML = "";
  for (const a of board.agents) {
    const tr = document.createElement("tr");
    tr.dataset.agent = a.agent_id;
    tr.dataset.state = a.state;
    const th = document.createElement("th"); th.scope = "row"; th.textContent = a.agent_id;
    const st = document.createElement("td");
    const badge = document.createElement("span");
    badge.className = "badge " + a.state;
    badge.textContent = a.state.replace("_", " ") + (a.reason ? " (" + a.reason + ")" : "") + (a.pending ? " · pending" : "");
    st.appendChild(badge);
    const sups = (a.call && a.call.supervisors) || [];
    const call = a.call ? a.call.ani + (a.call.held ? " (held)" : "") +
      sups.map((x) => " · " + x.mode + " by " + x.supervisor).join("") : "—";
    const actions = document.createElement("td");
    const onCall = !!a.call && a.state === "talking";
    const mine = sups.find((x) => me && x.supervisor === me.id);
    for (const [mode, label] of [["monitor", "Monitor"], ["whisper", "Whisper"], ["barge", "Barge in"]]) {
      const b = actionButton(a.agent_id, label, () => supervise(a.agent_id, mode, undefined, label));
      b.disabled = !onCall || (mine && mine.mode === mode);
      actions.appendChild(b);
    }
    if (mine) {
      actions.appendChild(actionButton(a.agent_id, "Leave call", () => supervise(a.agent_id, "supervision", undefined, "Leave call", "DELETE")));
    }
    actions.appendChild(actionButton(a.agent_id, "Force Not Ready", () => supervise(a.agent_id, "state", { state: "not_ready" }, "Force Not Ready")));
    actions.appendChild(actionButton(a.agent_id, "Log out", () => supervise(a.agent_id, "state", { state: "logout" }, "Log out")));
    tr.append(th, st, cell(Edge.clock(a.time_in_state_ms + elapsed), "num"), cell(call), actions);
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
    if (msg.type === "wallboard") { board = msg; boardAt = Date.now(); render(); }
  }, (up) => {
    Edge.$("link").textContent = up ? "" : "Reconnecting…";
    Edge.$("link").className = up ? "who" : "who link-down";
  });
}

Edge.$("logout").addEventListener("click", async () => {
  if (socket) socket.close();
  await Edge.logout();
  location.reload();
});
setInterval(() => { if (board && !document.activeElement.closest("#team")) render(); }, 1000);
Edge.setupLogin(start);
