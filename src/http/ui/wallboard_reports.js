// Wallboard period figures: per queue, today's and the current 15
// minutes' offered, answered, abandoned, timed out, service level, ASA
// and AHT, and a chart of today's calls per 15 minutes with the service
// level, all from GET /api/v1/reports/wallboard (the reports' own figures
// and formula, which the page states). Plain SVG, no framework. Refreshed
// every REFRESH_MS and soon after a call ends (the server reuses one
// answer for 5 s).
"use strict";

const WallFigures = (() => {
  const REFRESH_MS = 15000;
  // After a call ended: past the server's 5 s reuse of its last answer.
  const AFTER_END_MS = 5500;
  const SVG = "http://www.w3.org/2000/svg";
  // Chart geometry (SVG user units; the chart scales to the card's width).
  const W = 480, H = 130, TOP = 8, BOTTOM = 18, SLOTS = 96;
  let figures = null;
  let lastEnded = null;
  let soon = null;

  function byQueue(id) {
    return figures ? figures.queues.find((q) => q.queue === id) : null;
  }

  function secs(ms) { return ms == null ? "—" : Edge.clock(ms); }

  function slText(row, thresholdMs) {
    const pct = row.service_level_pct;
    return pct == null ? "—" : pct.toFixed(0) + "% in " + (thresholdMs / 1000) + "s";
  }

  function slClass(pct) {
    return pct == null ? "" : pct >= SL_GOOD ? " good" : pct >= SL_WARN ? " warn" : " bad";
  }

  function cell(text, label, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    td.dataset.label = label;
    if (cls) td.className = cls;
    return td;
  }

  function rowFor(q, period, row) {
    const tr = document.createElement("tr");
    tr.dataset.queue = q.queue;
    tr.dataset.period = period;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = q.queue + " · " + (period === "today" ? "today" : "last 15 min");
    tr.append(th,
      cell(String(row.offered), "Offered", "num"),
      cell(String(row.answered), "Answered", "num"),
      cell(String(row.abandoned) + (row.short_abandoned ? " (" + row.short_abandoned + " short)" : ""),
        "Abandoned", "num"),
      cell(String(row.timed_out), "Timed out", "num"),
      cell(slText(row, q.service_level_threshold_ms), "Service level",
        "num sl" + slClass(row.service_level_pct)),
      cell(secs(row.asa_ms), "ASA", "num"),
      cell(secs(row.aht_ms), "AHT", "num"));
    return tr;
  }

  function el(name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    if (text != null) e.textContent = text;
    return e;
  }

  // Today's calls per 15 minutes (bars: answered, abandoned, the rest) and
  // the service level (line, 0-100 % over the chart's height).
  function chart(q) {
    const plot = H - TOP - BOTTOM;
    const max = Math.max(1, ...q.intervals.map((p) => p.offered));
    const slot = W / SLOTS;
    const dayStart = Date.parse(figures.day_start);
    const svg = el("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", role: "img" });
    const offered = q.intervals.reduce((n, p) => n + p.offered, 0);
    svg.setAttribute("aria-label", q.queue + ": " + offered + " calls today in 15-minute bars, most " + max +
      " in one; the line is the service level");
    svg.dataset.queue = q.queue;
    // Through the CSSOM (the page's CSP allows no style attribute): a
    // phone's width, at most 1.4 times the drawing on a wall screen.
    svg.style.maxWidth = Math.round(1.4 * W) + "px";
    svg.style.display = "block";
    for (let h = 0; h <= 24; h += 6) {
      const x = Math.min(W - 1, h * 4 * slot);
      svg.appendChild(el("line", { x1: x, x2: x, y1: TOP, y2: H - BOTTOM, stroke: "#d5d9df" }));
      svg.appendChild(el("text", { x: h === 24 ? W : x + 2, y: H - 4, "font-size": 11, fill: "#5b6470",
        "text-anchor": h === 24 ? "end" : "start" }, String(h).padStart(2, "0") + ":00"));
    }
    svg.appendChild(el("line", { x1: 0, x2: W, y1: H - BOTTOM, y2: H - BOTTOM, stroke: "#5b6470" }));
    const line = [];
    for (const p of q.intervals) {
      const i = Math.floor((p.start_ms - dayStart) / 900000);
      if (i < 0 || i >= SLOTS) continue;
      const x = i * slot;
      let y = H - BOTTOM;
      const rest = p.offered - p.answered - p.abandoned;
      for (const [n, colour] of [[p.answered, "#17602d"], [p.abandoned, "#b3261e"], [rest, "#8a5200"]]) {
        if (n <= 0) continue;
        const h = n / max * plot;
        y -= h;
        svg.appendChild(el("rect", { x: x + 0.5, y, width: Math.max(1, slot - 1), height: h, fill: colour }));
      }
      if (p.service_level_pct != null) {
        line.push((x + slot / 2).toFixed(1) + "," + (H - BOTTOM - p.service_level_pct / 100 * plot).toFixed(1));
      }
    }
    if (line.length) {
      svg.appendChild(el("polyline", { points: line.join(" "), fill: "none", stroke: "#1f5fa8", "stroke-width": 2 }));
    }
    const fig = document.createElement("figure");
    fig.className = "figures";
    const cap = document.createElement("figcaption");
    cap.className = "muted";
    cap.textContent = q.queue + ": calls per 15 minutes today (green answered, red abandoned, brown other), " +
      "blue line service level (0-100 %)";
    fig.append(svg, cap);
    return fig;
  }

  function render() {
    if (!figures) return;
    const body = Edge.$("figures");
    body.innerHTML = "";
    const charts = Edge.$("charts");
    charts.innerHTML = "";
    for (const q of figures.queues) {
      body.append(rowFor(q, "today", q.today), rowFor(q, "current", q.current));
      charts.appendChild(chart(q));
    }
    Edge.$("period").textContent = "Today since midnight, " + figures.time_zone + " (" + figures.day_start.slice(11, 16) +
      " UTC), and the 15 minutes since " +
      figures.current_start.slice(11, 16) + " UTC; a call counts once it ended, in the 15 minutes it joined the queue.";
    Edge.$("formula").textContent = "Service level = " + figures.service_level_formula.replace(" - ", " − ") +
      "; a short abandon is a caller gone within " + (figures.short_abandon_ms / 1000) + " s.";
  }

  async function load() {
    if (!Edge.online) return;
    try {
      figures = await Edge.api("GET", "/reports/wallboard");
      render();
      if (typeof window.render === "function") window.render();
    } catch (e) {
      Edge.$("period").textContent = "Figures unavailable: " + e.message;
    }
  }

  return {
    start() {
      load();
      setInterval(load, REFRESH_MS);
    },
    // A wallboard snapshot came: when a call ended since the last one,
    // fetch the figures again shortly.
    onBoard(board) {
      const ended = JSON.stringify(board.ended || {});
      if (lastEnded !== null && ended !== lastEnded && !soon) {
        soon = setTimeout(() => { soon = null; load(); }, AFTER_END_MS);
      }
      lastEnded = ended;
    },
    // Today's service level of queue `id` as the queue table shows it:
    // {text, pct}, or null before the figures came.
    serviceLevel(id) {
      const q = byQueue(id);
      return q ? { text: slText(q.today, q.service_level_threshold_ms), pct: q.today.service_level_pct } : null;
    },
  };
})();
