// edgecc UI: shared API client, login and the event WebSocket.
// No build step: plain ES2017, served from the binary.
"use strict";

const TOKEN_KEY = "edgecc.token";
const USER_KEY = "edgecc.user";
// Reconnect backoff bounds (ms): a blip reconnects fast, an outage slowly.
const RECONNECT_MS_MIN = 250;
const RECONNECT_MS_MAX = 5000;

const Edge = {
  token() { return sessionStorage.getItem(TOKEN_KEY); },
  user() { return JSON.parse(sessionStorage.getItem(USER_KEY) || "null"); },

  async api(method, path, body) {
    const headers = { "Accept": "application/json" };
    const token = Edge.token();
    if (token) headers["Authorization"] = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const res = await fetch("/api/v1" + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (res.status === 401 && path !== "/session") {
      Edge.forget();
      location.reload();
    }
    if (!res.ok) {
      const msg = data && data.message ? data.message : res.statusText;
      throw new Error(msg);
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

  // Opens the event WebSocket (token in the first message, so it never
  // lands in access logs) and reconnects with backoff. `onMessage` gets
  // every parsed message; `onLink(up)` the connection state.
  events(onMessage, onLink) {
    let delay = RECONNECT_MS_MIN;
    let closedByUs = false;
    let ws = null;
    const open = () => {
      const proto = location.protocol === "https:" ? "wss:" : "ws:";
      ws = new WebSocket(proto + "//" + location.host + "/api/v1/events");
      ws.onopen = () => {
        ws.send(JSON.stringify({ token: Edge.token() }));
        delay = RECONNECT_MS_MIN;
        onLink(true);
      };
      ws.onmessage = (ev) => {
        let msg;
        try { msg = JSON.parse(ev.data); } catch (_) { return; }
        if (msg.type === "error" && msg.error === "unauthorized") {
          closedByUs = true;
          Edge.forget();
          location.reload();
          return;
        }
        onMessage(msg);
      };
      ws.onclose = () => {
        onLink(false);
        if (closedByUs) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, RECONNECT_MS_MAX);
      };
    };
    open();
    return { close() { closedByUs = true; if (ws) ws.close(); } };
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
      Edge.$("login-id").focus();
    }
  },
};
