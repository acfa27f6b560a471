// Wallboard add-on: "why this agent" for live calls. A card of its own
// (built here, so the wallboard page needs one <script> line) lists the
// live calls with a "Why" button; the button opens a panel with the call's
// latest routing explanations from GET /api/v1/calls/{id}/routing: the
// rule and what decided, the call's skills and escalation step, the
// candidates read with their skill surplus, strategy key, score and idle
// time, and the members held back (backing off, cooling off).
"use strict";

(function () {
  // Live-call list refresh (ms): the list only offers the button; the
  // explanation itself is fetched when asked.
  const REFRESH_MS = 3000;
  let open = null;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = text;
    if (cls) e.className = cls;
    return e;
  }

  function card() {
    let c = document.getElementById("why-card");
    if (c) return c;
    const main = document.querySelector("main");
    if (!main) return null;
    c = el("section", undefined, "card");
    c.id = "why-card";
    c.setAttribute("aria-labelledby", "why-title");
    const h = el("h2", "Live calls: why this agent");
    h.id = "why-title";
    const list = el("table", undefined, "cards");
    list.innerHTML = "<thead><tr><th scope=\"col\">Call</th><th scope=\"col\">Caller</th>" +
      "<th scope=\"col\">Queue</th><th scope=\"col\">Phase</th><th scope=\"col\"></th></tr></thead>";
    const body = el("tbody");
    body.id = "why-calls";
    list.appendChild(body);
    const panel = el("div");
    panel.id = "why-panel";
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-live", "polite");
    panel.hidden = true;
    c.append(h, list, panel);
    main.appendChild(c);
    return c;
  }

  function table(head, rows) {
    const t = el("table", undefined, "cards");
    const tr = el("tr");
    for (const h of head) { const th = el("th", h); th.scope = "col"; tr.appendChild(th); }
    const thead = el("thead"); thead.appendChild(tr);
    const body = el("tbody");
    for (const r of rows) {
      const row = el("tr");
      r.forEach((v, i) => {
        const td = el("td", v == null ? "—" : String(v));
        td.dataset.label = head[i];
        row.appendChild(td);
      });
      body.appendChild(row);
    }
    t.append(thead, body);
    return t;
  }

  function skills(list) {
    return list.length ? list.map((s) => s.skill + "≥" + s.level_min).join(", ") : "none";
  }

  function step(e) {
    if (!e.step) return "none reached";
    const s = e.step;
    const what = s.any_member ? "any member" : s.level_min != null ? "level ≥ " + s.level_min : "overflow";
    return "step " + e.steps_reached + " (after " + (s.after_ms / 1000) + " s: " + what + ")";
  }

  function render(panel, data) {
    panel.innerHTML = "";
    const close = el("button", "Close");
    close.type = "button";
    close.addEventListener("click", () => { open = null; panel.hidden = true; });
    panel.appendChild(el("h3", "Call " + data.call_id + " · " + data.phase + " · " + data.offers_total + " offer(s)"));
    if (!data.offers.length) panel.appendChild(el("p", "No queue offer yet."));
    for (const e of data.offers.slice().reverse()) {
      const when = new Date(e.offered_ms).toLocaleTimeString();
      panel.appendChild(el("p", when + " · queue " + e.queue + " → " + e.chosen.join(", ") +
        " · rule " + e.rule.replace(/_/g, " ") + ", decided by " + e.decided_by.replace(/_/g, " ") +
        " · strategy " + e.strategy + " · skills " + skills(e.skills) + " · " + step(e) +
        (e.hold_until_ms ? " · own agent held until " + new Date(e.hold_until_ms).toLocaleTimeString() : "")));
      panel.appendChild(el("p", e.candidates_read + " read, " + e.candidates_eligible + " eligible, " +
        e.ready_agents + " Ready, " + e.tried_agents + " tried before, " + e.held_back_total + " held back"));
      panel.appendChild(table(["Agent", "Chosen", "Skill surplus", "Strategy key", "Score rank", "Idle", "Tried before"],
        e.candidates.map((c) => [c.agent, c.chosen ? "yes" : "", c.skill_surplus, c.strategy_key, c.score_rank,
          c.idle_ms == null ? null : Edge.clock(c.idle_ms), c.tried ? "yes" : ""])));
      if (e.held_back.length) {
        panel.appendChild(table(["Held back", "Why", "Until"],
          e.held_back.map((h) => [h.agent, h.reason.replace(/_/g, " "),
            h.until_ms == null ? "until Ready" : new Date(h.until_ms).toLocaleTimeString()])));
      }
    }
    panel.appendChild(close);
    panel.hidden = false;
  }

  async function why(callId) {
    const panel = document.getElementById("why-panel");
    open = callId;
    try {
      render(panel, await Edge.api("GET", "/calls/" + encodeURIComponent(callId) + "/routing"));
    } catch (e) {
      Edge.status("Why " + callId + ": " + e.message, true);
    }
  }

  async function refresh() {
    const user = Edge.user();
    if (!Edge.token() || !user || user.role === "agent") return;
    const c = card();
    if (!c) return;
    let data;
    try { data = await Edge.api("GET", "/calls"); } catch (_) { return; }
    const body = document.getElementById("why-calls");
    body.innerHTML = "";
    for (const call of data.calls || []) {
      const tr = el("tr");
      tr.dataset.call = call.call;
      const b = el("button", "Why");
      b.type = "button";
      b.setAttribute("aria-label", "Why this agent for call " + call.call);
      b.addEventListener("click", () => why(call.call));
      const td = el("td", undefined, "actions"); td.appendChild(b);
      const cells = [["Call", call.call], ["Caller", call.ani], ["Queue", call.queue || "—"], ["Phase", call.phase]]
        .map(([label, text]) => { const c = el("td", text); c.dataset.label = label; return c; });
      tr.append(...cells, td);
      body.appendChild(tr);
    }
    if (open) why(open);
  }

  setInterval(refresh, REFRESH_MS);
  refresh();
})();
