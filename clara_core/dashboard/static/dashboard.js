// Clara's monitor page: keeps the snapshot from /events (server-sent events) up
// to date with the deltas that follow it, redraws in place, and draws the charts
// with the vendored uPlot.  No page reloads.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const text = (v) => (v === undefined || v === null ? "–" : String(v));
  const el = (tag, content, cls) => {
    const e = document.createElement(tag);
    e.textContent = content;
    if (cls) e.className = cls;
    return e;
  };
  const clock = (t) => new Date(t * 1000).toLocaleTimeString([], { hour12: false });
  const kv = (node, obj) => {
    node.replaceChildren();
    if (!obj) { node.append(el("p", "not running", "dim")); return; }
    for (const [k, v] of Object.entries(obj)) {
      node.append(el("p", k.replace(/_/g, " ") + ": " + (typeof v === "object" ? JSON.stringify(v) : text(v))));
    }
  };
  const rows = (tbody, items, cells) => {
    tbody.replaceChildren(...items.map((item) => {
      const tr = document.createElement("tr");
      for (const [value, cls] of cells(item)) tr.append(el("td", text(value), cls));
      return tr;
    }));
  };

  let uptimeBase = 0, uptimeAt = Date.now();
  let latencyPlot = null, errorPlot = null;
  const moodPlots = {};

  function plotOpts(title, series, width) {
    return {
      title, width: width || 420, height: 160, legend: { show: true },
      // Always the last hour, however few points there are (uPlot would stretch
      // a single point over years).
      scales: { x: { time: true, range: () => { const now = Date.now() / 1000; return [now - 3600, now + 30]; } } },
      series: [{}].concat(series),
    };
  }

  // The chart points: the whole hour once ("series"), then only new points
  // ("series_append"); older than an hour falls off here too.
  let turns = [];
  const moods = {};
  function merge(full, append) {
    const cutoff = Date.now() / 1000 - 3600;
    if (full) {
      turns = (full.turns || []).slice();
      for (const k of Object.keys(moods)) delete moods[k];
      Object.assign(moods, full.mood || {});
    }
    if (append) {
      turns = turns.concat(append.turns || []);
      for (const [c, points] of Object.entries(append.mood || {})) moods[c] = (moods[c] || []).concat(points);
    }
    turns = turns.filter((t) => t[0] >= cutoff);
    for (const c of Object.keys(moods)) moods[c] = moods[c].filter((p) => p[0] >= cutoff);
  }

  // Failed turns per minute over the last hour: one bar per minute, zeros
  // included (a quiet minute is a point on the chart, not a gap).
  function failedPerMinute(points, nowS) {
    const end = Math.floor(nowS / 60) * 60;
    const xs = [], ys = [];
    for (let m = end - 59 * 60; m <= end; m += 60) { xs.push(m); ys.push(0); }
    for (const t of points) {
      const i = (Math.floor(t[0] / 60) * 60 - xs[0]) / 60;
      if (!t[2] && i >= 0 && i < ys.length) ys[i] += 1;
    }
    return [xs, ys];
  }
  // For the browser test: the page's state (to compare with /status) and its
  // chart points.
  window.claraDashboard = {
    failedPerMinute,
    state: () => state,
    points: () => ({ turns, moods }),
  };

  function drawCharts() {
    if (typeof uPlot === "undefined") return;
    const data = [turns.map((t) => t[0]), turns.map((t) => t[1])];
    const failed = turns.filter((t) => !t[2]).length;
    $("errors").textContent = turns.length + " turns, " + failed + " failed in the last hour";
    if (!latencyPlot) {
      latencyPlot = new uPlot(plotOpts("", [{ label: "seconds", stroke: "#5b4fc7", points: { show: true } }]), data, $("latency-chart"));
    } else {
      latencyPlot.setData(data);
    }
    const errors = failedPerMinute(turns, Date.now() / 1000);
    if (!errorPlot) {
      errorPlot = new uPlot(plotOpts("", [{ label: "failed", stroke: "#b3261e", fill: "#b3261e33" }]), errors, $("error-chart"));
    } else {
      errorPlot.setData(errors);
    }
    const colours = ["#c7504f", "#4f8ec7", "#4fc78a", "#c7a54f", "#9a4fc7", "#777"];
    for (const [channel, points] of Object.entries(moods)) {
      if (!points.length) continue;
      const names = Object.keys(points[0][1]);
      const d = [points.map((p) => p[0])].concat(names.map((n) => points.map((p) => p[1][n])));
      if (!moodPlots[channel]) {
        const box = document.createElement("div");
        box.className = "mood";
        box.dataset.channel = channel;
        $("mood-charts").append(box);
        moodPlots[channel] = new uPlot(
          plotOpts("channel " + channel, names.map((n, i) => ({ label: n, stroke: colours[i % colours.length] })), 360),
          d, box);
      } else {
        moodPlots[channel].setData(d);
      }
    }
  }

  // What the page shows: the last whole snapshot with every delta since applied
  // (the chart points are kept apart, in turns/moods).
  let state = {};

  // A whole snapshot (the page's own at load, the first event of each connection).
  function applySnapshot(s) {
    state = Object.assign({}, s);
    delete state.series;
    delete state.series_append;
    merge(s.series, s.series_append);
    render(state);
  }

  // A delta (monitor.Monitor._delta): "set" replaces facts, "unset" removes them,
  // "recent" holds the new turns (newest first, each an array of the "fields"
  // named) to put before the rows, cut to "keep"; "series_append" the new chart
  // points the rows do not carry.
  function applyDelta(d) {
    Object.assign(state, d.set || {});
    for (const k of d.unset || []) delete state[k];
    const added = (d.recent || []).map((r) => Object.fromEntries(d.fields.map((f, i) => [f, r[i]])));
    state.recent = added.concat(state.recent || []).slice(0, d.keep);
    state.uptime_s = d.uptime_s;
    // The new turns' chart points: those the rows lack, then the rows' own
    // (oldest first), which the server does not send twice.
    const points = added.slice().reverse().map((a) => [a.at, a.seconds, a.ok]);
    const append = d.series_append || {};
    merge(null, { turns: (append.turns || []).concat(points), mood: append.mood });
    render(state);
  }

  function render(s) {
    const connected = !!s.discord_connected;
    const c = $("connection");
    c.textContent = connected ? "connected" : "disconnected";
    c.className = connected ? "ok" : "bad";
    $("servers").textContent = text(s.servers);
    $("latency").textContent = s.latency_ms === undefined ? "–" : s.latency_ms + " ms";
    rows($("shards"), s.shards || [], (sh) => [[sh.id + "/" + sh.count], [sh.open ? "open" : "closed", sh.open ? "ok" : "bad"],
      [sh.latency_ms === null || sh.latency_ms === undefined ? "–" : sh.latency_ms + " ms"], [sh.guilds]]);
    $("in-flight").textContent = text(s.in_flight);
    $("provider").textContent = text(s.provider);
    $("model").textContent = s.model || "";
    uptimeBase = s.uptime_s || 0; uptimeAt = Date.now();
    const queue = Object.entries(s.busy_channels || {});
    $("queue").replaceChildren(...(queue.length ? queue.map(([ch, n]) => el("p", "#" + ch + ": " + n)) : [el("p", "idle", "dim")]));
    kv($("sandbox"), s.sandbox);
    kv($("cortex"), s.cortex);
    kv($("ors"), s.ors);
    rows($("mcp"), s.mcp || [], (m) => [[m.name], [m.state, m.state === "running" ? "ok" : (m.last_error ? "bad" : "")], [(m.tools || []).length], [m.restarts], [m.last_error || ""], [""]]);
    if ((s.actions || []).includes("mcp-restart")) {
      for (const [i, m] of (s.mcp || []).entries()) {
        const b = el("button", "restart");
        b.dataset.action = "mcp-restart";
        b.dataset.server = m.name;
        $("mcp").children[i].lastChild.append(b);
      }
    }
    rows($("recent"), s.recent || [], (a) => [[clock(a.at)], [a.channel], [a.user], [a.tier || "–"], [a.model],
      [a.ttft_s === null || a.ttft_s === undefined ? "–" : a.ttft_s.toFixed(2) + "s"], [a.seconds.toFixed(1) + "s"],
      [(a.tools || []).join(", ")], [a.ok ? "ok" : "failed", a.ok ? "ok" : "bad"]]);
    rows($("tools"), Object.entries(s.tool_stats || {}), ([name, t]) => [[name], [t.calls], [t.errors, t.errors ? "bad" : ""]]);
    drawCharts();
  }

  setInterval(() => {
    const s = uptimeBase + (Date.now() - uptimeAt) / 1000;
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    $("uptime").textContent = (h ? h + " h " : "") + (h || m ? m + " min " : "") + Math.floor(s % 60) + " s";
  }, 1000);

  // Operator actions: a POST with the page's CSRF token (a page on another site
  // cannot send that header), the answer shown under the cards.
  document.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b) return;
    const body = b.dataset.server ? { server: b.dataset.server } : {};
    const label = b.dataset.action + (b.dataset.server ? " " + b.dataset.server : "");
    b.disabled = true;
    $("action-result").textContent = label + "…";
    try {
      const r = await fetch("/actions/" + b.dataset.action, {
        method: "POST",
        headers: { "Content-Type": "application/json",
                   "X-CSRF-Token": document.querySelector("meta[name=csrf-token]").content },
        body: JSON.stringify(body),
      });
      const answer = await r.json().catch(() => ({ message: r.statusText }));
      $("action-result").textContent = label + ": " + answer.message;
      $("action-result").className = r.ok ? "ok" : "bad";
    } catch (err) {
      $("action-result").textContent = label + ": " + err;
      $("action-result").className = "bad";
    } finally {
      b.disabled = false;
    }
  });

  applySnapshot(JSON.parse($("initial").textContent));
  // EventSource reconnects by itself when Clara restarts; the badge says so.
  const source = new EventSource("/events");
  const live = $("live");
  source.addEventListener("open", () => { live.textContent = "live"; live.className = "badge on"; });
  source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "badge off"; });
  source.addEventListener("snapshot", (e) => applySnapshot(JSON.parse(e.data)));
  source.addEventListener("delta", (e) => applyDelta(JSON.parse(e.data)));
})();
