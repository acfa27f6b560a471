// Agent desktop: renders the server's snapshot; every button is one API call.
// The WebSocket (see common.js) sends a fresh snapshot after each change, so
// a refresh or a reconnect shows exactly the same screen.
"use strict";

let snap = null;           // last snapshot from the server
let snapAt = 0;            // local time it arrived (for timers)
let socket = null;

function stateOptions(codes, current) {
  const sel = Edge.$("state-select");
  const keep = sel.value;
  sel.innerHTML = "";
  const add = (value, text) => {
    const o = document.createElement("option");
    o.value = value; o.textContent = text; sel.appendChild(o);
  };
  if (current === "logged_out") add("login", "Log in (Not Ready)");
  add("ready", "Ready");
  for (const r of codes) add("not_ready:" + r.code, "Not Ready — " + (r.label || r.code));
  add("logout", "Log out");
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

function render() {
  if (!snap) return;
  const a = snap.agent;
  const st = Edge.$("agent-state");
  st.textContent = a.state.replace("_", " ");
  st.className = "badge " + a.state;
  st.dataset.state = a.state;
  Edge.$("agent-reason").textContent = a.reason ? "(" + a.reason + ")" : "";
  Edge.$("agent-pending").textContent = a.pending ? "· change pending after the call" : "";
  stateOptions(snap.reason_codes || [], a.state);

  const c = snap.call;
  const offering = snap.offer && c;
  Edge.show("offer", !!offering);
  if (offering) {
    Edge.$("offer-ani").textContent = c.ani;
    Edge.$("offer-queue").textContent = c.queue || "direct";
    fillData("offer-data", c.attached);
    // Accepted here, the phone not picked up yet: say so, and no second accept.
    Edge.show("offer-phone", !!c.waiting_for_phone);
    Edge.$("accept").disabled = !!c.waiting_for_phone;
  }
  const onCall = c && !snap.offer;
  Edge.show("call", !!onCall);
  if (onCall) {
    Edge.$("call-ani").textContent = c.ani;
    Edge.show("call-held", c.held);
    Edge.show("call-muted", c.muted);
    Edge.$("call-interaction").textContent = c.interaction.interaction_id;
    const badge = Edge.$("sync-badge");
    badge.textContent = "CRM: " + c.interaction.sync_state;
    badge.className = "badge " + c.interaction.sync_state;
    badge.dataset.sync = c.interaction.sync_state;
    fillData("call-data", c.attached);
    const talking = a.state === "talking";
    Edge.$("hold").disabled = !talking || c.held;
    Edge.$("resume").disabled = !talking || !c.held;
    Edge.$("mute").disabled = !talking || c.muted;
    Edge.$("unmute").disabled = !talking || !c.muted;
    Edge.$("hangup").disabled = !talking;
    Edge.show("call-controls", talking);
    Edge.show("transfer-controls", talking);
    Edge.show("wrapup", a.state === "wrap_up");
  }
  Edge.show("dial", a.state === "not_ready");
  tick();
}

function tick() {
  if (!snap) return;
  const elapsed = Date.now() - snapAt;
  Edge.$("state-timer").textContent = Edge.clock(snap.agent.time_in_state_ms + elapsed);
  const c = snap.call;
  Edge.$("call-timer").textContent = c && c.duration_ms != null ? Edge.clock(c.duration_ms + elapsed) : "0:00";
}

async function act(fn, okText) {
  try {
    const res = await fn();
    if (res && res.type === "snapshot") { snap = res; snapAt = Date.now(); render(); }
    if (okText) Edge.status(okText, false);
  } catch (e) {
    Edge.status(e.message, true);
  }
}

function callAction(action, body) {
  return act(() => Edge.api("POST", "/calls/" + encodeURIComponent(snap.call.call_id) + "/" + action, body), action.replace("_", " ") + " done");
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
    if (msg.type === "snapshot") { snap = msg; snapAt = Date.now(); render(); }
  }, (up) => {
    Edge.$("link").textContent = up ? "" : "Reconnecting…";
    Edge.$("link").className = up ? "who" : "who link-down";
  });
}

Edge.$("state-apply").addEventListener("click", () => {
  const v = Edge.$("state-select").value;
  const body = v.startsWith("not_ready:") ? { state: "not_ready", reason_code: v.slice(10) } : { state: v };
  act(() => Edge.api("POST", "/agent/state", body), "State changed");
});
Edge.$("accept").addEventListener("click", () => callAction("accept"));
Edge.$("reject").addEventListener("click", () => callAction("reject"));
Edge.$("hold").addEventListener("click", () => callAction("hold"));
Edge.$("resume").addEventListener("click", () => callAction("resume"));
Edge.$("mute").addEventListener("click", () => callAction("mute"));
Edge.$("unmute").addEventListener("click", () => callAction("unmute"));
Edge.$("hangup").addEventListener("click", () => callAction("hangup"));
Edge.$("transfer").addEventListener("click", () => callAction("transfer", { target_agent: Edge.$("target").value.trim() }));
Edge.$("consult").addEventListener("click", () => callAction("consult", { target_agent: Edge.$("target").value.trim() }));
Edge.$("consult-complete").addEventListener("click", () => callAction("consult_complete"));
Edge.$("consult-conference").addEventListener("click", () => callAction("consult_conference"));
Edge.$("consult-cancel").addEventListener("click", () => callAction("consult_cancel"));
Edge.$("sticky").addEventListener("click", () => callAction("sticky"));
Edge.$("wrapup-save").addEventListener("click", () => callAction("wrap_up", { code: Edge.$("wrapup-code").value.trim() }));
Edge.$("wrapup-end").addEventListener("click", () => act(() => Edge.api("POST", "/agent/wrap_up/end"), "Wrap-up ended"));
Edge.$("dial-go").addEventListener("click", () => act(() => Edge.api("POST", "/agent/dial", { number: Edge.$("dial-number").value.trim() }), "Dialing"));
Edge.$("open-interaction").addEventListener("click", async () => {
  if (!snap || !snap.call) return;
  try {
    const i = await Edge.api("GET", "/interactions/" + encodeURIComponent(snap.call.call_id));
    if (i.crm_link) window.open(i.crm_link, "_blank", "noopener");
    else Edge.status("Interaction " + i.interaction_id + " is " + i.sync_state + " (no CRM record yet)", false);
  } catch (e) { Edge.status(e.message, true); }
});
Edge.$("logout").addEventListener("click", async () => {
  if (socket) socket.close();
  await Edge.logout();
  location.reload();
});
setInterval(tick, 1000);
Edge.setupLogin(start);
