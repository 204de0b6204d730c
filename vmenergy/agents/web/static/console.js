// VME console: charts from the agent's JSON endpoints (uPlot, served with the package), live
// refresh on the agent's event stream, and the settings form. No other library, no CDN.
"use strict";
(function () {
  const SERIES = [
    ["baseline", "#6c757d", [6, 4]], ["scheduled", "#1d3557", null], ["min", "#90be6d", [2, 3]],
    ["max", "#f94144", [2, 3]], ["market", "#f8961e", null], ["measured", "#7209b7", null],
  ];
  let chart = null;

  function nowLine(nowSec) {
    return { hooks: { draw: [u => {
      const x = u.valToPos(nowSec, "x", true);
      if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
      const c = u.ctx; c.save(); c.strokeStyle = "#e63946"; c.lineWidth = 2; c.setLineDash([5, 5]);
      c.beginPath(); c.moveTo(x, u.bbox.top); c.lineTo(x, u.bbox.top + u.bbox.height); c.stroke();
      c.fillStyle = "#e63946"; c.fillText("now", x + 4, u.bbox.top + 12); c.restore();
    }] } };
  }

  function chartQuery() {
    const f = document.getElementById("filter");
    if (!f) return "";
    const p = new URLSearchParams();
    for (const k of ["from", "to"]) {
      const v = f.elements[k] && f.elements[k].value;
      if (v) p.set(k, (v.length === 16 ? v + ":00" : v) + "Z");
    }
    if (f.elements.prosumer && f.elements.prosumer.value) p.set("prosumer", f.elements.prosumer.value);
    const s = p.toString();
    return s ? "?" + s : "";
  }

  async function drawChart() {
    const el = document.getElementById("chart");
    if (!el || typeof uPlot === "undefined") return;
    const src = el.dataset.src, q = chartQuery();
    const r = await fetch(src + (q && src.includes("?") ? "&" + q.slice(1) : q), { credentials: "same-origin" });
    if (!r.ok) { el.textContent = "chart: " + r.status; return; }
    const d = await r.json();
    const data = [d.t].concat(SERIES.map(s => d[s[0]]));
    const nowSec = Date.parse(d.now) / 1000;
    const points = d.t.length * SERIES.length;
    el.dataset.points = String(points);
    el.dataset.nonzero = String(SERIES.reduce((n, s) => n + d[s[0]].filter(v => v !== 0).length, 0));
    const info = document.getElementById("chart-info");
    if (info) info.textContent = `${d.t.length} intervals of ${d.resolution / 60} min from ${d.start} (UTC); now ${d.now}`;
    if (chart) { chart.destroy(); chart = null; }
    const opts = {
      width: Math.max(400, el.clientWidth - 16), height: el.classList.contains("small") ? 200 : 300,
      tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      series: [{}].concat(SERIES.map(s => ({ label: s[0], stroke: s[1], dash: s[2] || undefined, width: 2,
                                             paths: uPlot.paths.stepped({ align: 1 }) }))),
      axes: [{}, { label: "kWh" }],
      plugins: [nowLine(nowSec)],
    };
    el.textContent = "";
    chart = new uPlot(opts, data, el);
    window.vmeChart = chart;
  }

  async function drawClearing() {
    const el = document.getElementById("clearing");
    if (!el || typeof uPlot === "undefined") return;
    const r = await fetch(el.dataset.src, { credentials: "same-origin" });
    if (!r.ok) { el.textContent = "clearing: " + r.status; return; }
    const d = await r.json();
    el.dataset.points = String(d.t.length);
    if (!d.t.length) { el.textContent = "nothing cleared yet"; return; }
    el.textContent = "";
    new uPlot({
      width: Math.max(400, el.clientWidth - 16), height: 280,
      tzDate: ts => uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),
      scales: { y: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.1 : 1] },
                price: { range: (u, lo, hi) => [0, hi > 0 ? hi * 1.2 : 1] } },
      series: [{}, { label: "volume kWh", stroke: "#1d3557", fill: "rgba(29,53,87,0.15)", width: 2,
                     paths: uPlot.paths.stepped({ align: 1 }) },
               { label: "price EUR/kWh", stroke: "#f8961e", width: 2, scale: "price",
                 paths: uPlot.paths.stepped({ align: 1 }) }],
      axes: [{}, { label: "kWh" }, { side: 1, scale: "price", label: "EUR/kWh", grid: { show: false } }],
    }, [d.t, d.volume, d.price], el);
  }

  async function refreshNumbers() {
    const tiles = document.getElementById("kpis");
    if (!tiles) return;
    const r = await fetch("/kpi", { credentials: "same-origin" });
    if (!r.ok) return;
    const d = await r.json(); const k = d.kpis;
    const set = (id, v) => { const e = document.getElementById(id); if (e && v !== undefined && v !== null) e.textContent = v; };
    set("k-offers", Object.values(d.offers).reduce((a, b) => a + b, 0));
    set("k-baseline", d.average_baseline_kwh); set("k-scheduled", d.average_scheduled_kwh);
    if (k) {
      set("k-variation", k.average_variation_kwh); set("k-peak", k.peak_demand_kw.toFixed(3));
      set("k-adapt", k.average_adaptability); set("k-costs", k.imbalance_cost_eur); set("k-gains", k.revenue_eur);
    }
  }

  function live() {
    if (!window.EventSource || !document.getElementById("chart")) return;
    const es = new EventSource("/events");
    es.addEventListener("changed", () => { drawChart(); refreshNumbers(); });
  }

  function settingsForm() {
    const f = document.getElementById("settings");
    if (!f) return;
    f.addEventListener("submit", async ev => {
      ev.preventDefault();
      // only what the operator changed: each change is a steering action of its own, audited
      const body = {};
      const agg = f.elements.aggregation, obj = f.elements.objective, trd = f.elements.trading;
      if (agg.value !== agg.dataset.initial) body.aggregation = agg.value === "true";
      if (obj && obj.value !== obj.dataset.initial) body.objective = { kind: obj.value };
      if (trd && trd.value !== trd.dataset.initial) body.trading = trd.value === "true";
      if (!Object.keys(body).length) { document.getElementById("set-result").textContent = "nothing changed"; return; }
      const r = await fetch("/settings", { method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const d = await r.json();
      const out = document.getElementById("set-result");
      out.textContent = r.ok ? d.outcomes.join("; ") || "nothing to change" : "refused: " + d.error.reason;
      out.className = r.ok ? "hint done" : "error";
      if (r.ok) setTimeout(() => location.reload(), 300);
    });
  }

  function contractForm() {
    const f = document.getElementById("contract-form");
    if (!f) return;
    f.addEventListener("submit", async ev => {
      ev.preventDefault();
      const out = document.getElementById("contract-result");
      let body;
      try { body = JSON.parse(f.elements.contract.value); } catch (e) { out.textContent = "not JSON: " + e.message; out.className = "error"; return; }
      const r = await fetch("/contract", { method: "PUT", credentials: "same-origin",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const d = await r.json();
      out.textContent = r.ok ? d.outcomes.join("; ") : `refused: ${d.error.path ? d.error.path + ": " : ""}${d.error.reason}`;
      out.className = r.ok ? "hint done" : "error";
    });
  }

  window.addEventListener("load", () => { drawChart(); drawClearing(); live(); settingsForm(); contractForm(); });
})();
