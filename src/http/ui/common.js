// edgecc UI: shared API client, login, the event WebSocket, the outage
// banner and plain-language errors. No build step: plain ES2017, served
// from the binary.
"use strict";

const TOKEN_KEY = "edgecc.token";
const USER_KEY = "edgecc.user";
// Why the last page lost its session: shown once on the login screen.
const NOTICE_KEY = "edgecc.notice";
// Reconnect backoff bounds (ms): a blip reconnects fast, an outage slowly.
const RECONNECT_MS_MIN = 250;
const RECONNECT_MS_MAX = 5000;
const OFFLINE_TEXT = "edgecc cannot be reached. Check your network; a call in progress continues on your phone.";

// Field names of the API, as a person reads them.
const FIELD_WORDS = {
  target_agent: "the agent to transfer or consult", target_queue: "the queue",
  code: "a wrap-up code", number: "the number to dial", reason_code: "a reason",
  agent_id: "your user id", state: "a state",
};

const Edge = {
  online: true,

  token() { return sessionStorage.getItem(TOKEN_KEY); },
  user() { return JSON.parse(sessionStorage.getItem(USER_KEY) || "null"); },

  // A server message in plain words: no backticks, no field names.
  human(message) {
    let m = String(message || "Something went wrong.");
    m = m.replace(/^field `(\w+)`: required.*$/, (_, f) => "Please give " + (FIELD_WORDS[f] || f) + ".");
    m = m.replace(/^field `(\w+)`: /, (_, f) => (FIELD_WORDS[f] || f) + ": ");
    m = m.replace(/agent (\S+) is not logged in/, "you are not logged in: choose \"Log in\" first");
    m = m.replace(/`/g, "");
    return m.charAt(0).toUpperCase() + m.slice(1);
  },

  async api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const token = Edge.token();
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch("/api/v1" + path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      throw new Error(OFFLINE_TEXT);
    }
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.status === 401 && path !== "/session") {
      Edge.sessionEnded();
    }
    if (!res.ok) {
      throw new Error(Edge.human(data && data.message ? data.message : res.statusText));
    }
    return data;
  },

  async login(id, password) {
    const data = await Edge.api("POST", "/session", { agent_id: id, password });
    sessionStorage.setItem(TOKEN_KEY, data.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify({ id: data.user_id, role: data.role }));
    return data;
  },

  async logout() {
    try { await Edge.api("DELETE", "/session"); } catch (_) { /* already gone */ }
    Edge.forget();
  },

  forget() {
    sessionStorage.removeItem(TOKEN_KEY);
    sessionStorage.removeItem(USER_KEY);
  },

  // The server no longer knows our token (restart, expiry, logged out
  // elsewhere): back to the login screen, saying why.
  sessionEnded() {
    Edge.forget();
    sessionStorage.setItem(NOTICE_KEY, "Your session ended (edgecc restarted, or the session expired or was closed elsewhere). Please log in again.");
    location.reload();
  },

  // Opens the event WebSocket (token in the first message, so it never
  // lands in access logs) and reconnects with backoff. `onMessage` gets
  // every parsed message; `onLink(up)` the connection state (after the
  // shared outage banner and control lock-out are set).
  events(onMessage, onLink) {
    let delay = RECONNECT_MS_MIN;
    let closedByUs = false;
    let wasDown = false;
    let ws = null;
    const link = (up) => {
      Edge.setOnline(up, wasDown);
      wasDown = !up;
      onLink(up);
    };
    const open = () => {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      ws = new WebSocket(proto + "//" + location.host + "/api/v1/events");
      ws.onopen = () => {
        ws.send(JSON.stringify({ token: Edge.token() }));
        delay = RECONNECT_MS_MIN;
      };
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch (_) { return; }
        if (msg.type === "error" && msg.error === "unauthorized") {
          closedByUs = true;
          Edge.sessionEnded();
          return;
        }
        // The first message after the token: the link is really up.
        if (!Edge.online || wasDown) link(true);
        onMessage(msg);
      };
      ws.onclose = () => {
        if (closedByUs) return;
        if (Edge.online) link(false);
        setTimeout(open, delay);
        delay = Math.min(delay * 2, RECONNECT_MS_MAX);
      };
    };
    open();
    return { close() { closedByUs = true; if (ws) ws.close(); } };
  },

  // Link up or down: the banner, and every control of the page disabled
  // while down (a click could not reach edgecc anyway).
  setOnline(up, wasDown) {
    Edge.online = up;
    Edge.show("outage", !up);
    const controls = Edge.$("controls");
    if (controls) controls.disabled = !up;
    document.body.classList.toggle("offline", !up);
    Edge.$("link").textContent = up ? "" : "Reconnecting…";
    Edge.$("link").className = up ? "who" : "who link-down";
    if (up && wasDown) Edge.status("Connection to edgecc restored.", false);
  },

  // "1:05", "12:03:09".
  clock(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return h > 0 ? h + ":" + two(m) + ":" + two(sec) : m + ":" + two(sec);
  },

  $(id) { return document.getElementById(id); },

  show(id, visible) { Edge.$(id).hidden = !visible; },

  status(text, isError) {
    const el = Edge.$("status");
    el.textContent = text;
    el.className = isError ? "status error" : "status";
  },

  // Wires the shared login form; `onIn(user)` runs once logged in.
  setupLogin(onIn) {
    const form = Edge.$("login-form");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const data = await Edge.login(Edge.$("login-id").value.trim(), Edge.$("login-password").value);
        Edge.$("login-password").value = "";
        Edge.show("login", false);
        Edge.status("", false);
        onIn({ id: data.user_id, role: data.role });
      } catch (e) {
        Edge.status("Login failed: " + e.message, true);
      }
    });
    const user = Edge.user();
    if (Edge.token() && user) {
      Edge.show("login", false);
      onIn(user);
    } else {
      Edge.show("login", true);
      const notice = sessionStorage.getItem(NOTICE_KEY);
      if (notice) {
        sessionStorage.removeItem(NOTICE_KEY);
        Edge.status(notice, true);
      }
      Edge.$("login-id").focus();
    }
  },
};
