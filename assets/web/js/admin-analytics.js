// The admin's Analytics view (`/app/admin/analytics?from=&to=&workspace=&group_by=`),
// from `GET /api/analytics/summary` (docs/protocol.md "Call analytics"):
//   - the range's figures, each `figure-…` with `data-value` holding the raw number
//     (rates 0–1, milliseconds, seconds, USD; "" when the engine has none);
//   - three charts drawn as plain SVG (no library: the CSP allows only this
//     origin): calls and answered per group, the human vs AI cost side by side,
//     the outbound dispositions. Each has a real <table> of the same rows and a
//     CSV download (a Blob URL of those rows, raw numbers).
// A refusal (range reversed, over a year, a bad date) is shown next to its field
// and the last good figures stay on the page.
import { el, money } from "./rest.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const GROUPINGS = ["day", "number", "route", "assistant"];
let api = null;
let wired = false;
const csvUrls = new Map();

const pct = (rate) => (typeof rate === "number" ? `${(rate * 100).toFixed(1)} %` : "–");
const msText = (ms) => (typeof ms === "number" ? `${(ms / 1000).toFixed(1)} s` : "–");
const secsText = (secs) => (typeof secs === "number" ? `${secs.toFixed(1)} s` : "–");
const usd = (value) => (typeof value === "number" ? `$${value.toFixed(4)}` : "–");
const count = (n) => (typeof n === "number" ? String(n) : "–");
const raw = (value) => (value === null || value === undefined ? "" : String(value));

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

// A grouped bar chart: `rows` [{label, values: [number|null]}], one bar per series
// (`series` [{name, cls}]) in each group, scaled to the largest value.
function barChart(title, series, rows, format) {
  const width = 640;
  const height = 220;
  const left = 56;
  const bottom = 40;
  const top = 24;
  const max = Math.max(0, ...rows.flatMap((row) => row.values.map((v) => v ?? 0)));
  const plotH = height - top - bottom;
  const band = rows.length ? (width - left - 8) / rows.length : 0;
  const bar = Math.max(2, Math.min(40, (band * 0.8) / series.length));
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart" });
  root.append(svg("title", {}, title));
  root.append(svg("line", { x1: left, y1: top + plotH, x2: width - 4, y2: top + plotH, class: "axis" }));
  root.append(svg("text", { x: left - 6, y: top + 4, "text-anchor": "end", class: "tick" }, format(max)));
  root.append(svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end", class: "tick" }, format(0)));
  rows.forEach((row, i) => {
    const x0 = left + i * band + (band - bar * series.length) / 2;
    row.values.forEach((value, s) => {
      const h = max > 0 && typeof value === "number" ? (value / max) * plotH : 0;
      const rect = svg("rect", { x: x0 + s * bar, y: top + plotH - h, width: bar - 1, height: h, class: `bar ${series[s].cls}` });
      rect.append(svg("title", {}, `${row.label} · ${series[s].name}: ${format(value)}`));
      root.append(rect);
    });
    root.append(svg("text", { x: left + i * band + band / 2, y: height - bottom + 16, "text-anchor": "middle", class: "tick" }, row.label));
  });
  series.forEach((s, i) => {
    root.append(svg("rect", { x: left + i * 130, y: 4, width: 10, height: 10, class: `bar ${s.cls}` }));
    root.append(svg("text", { x: left + i * 130 + 14, y: 13, class: "tick" }, s.name));
  });
  return root;
}

function csvCell(value) {
  const text = raw(value);
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

// One chart's table and CSV: `columns` [{name, shown(row), raw(row)}].
function tableAndCsv(name, columns, rows, fileName) {
  const table = $(`table-${name}`);
  table.replaceChildren(
    el("thead", {}, el("tr", {}, ...columns.map((c) => el("th", { scope: "col", text: c.name })))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map((c) => el("td", { text: c.shown(row) }))))),
  );
  const lines = [columns.map((c) => csvCell(c.name)).join(",")];
  for (const row of rows) lines.push(columns.map((c) => csvCell(c.raw(row))).join(","));
  const link = $(`csv-${name}`);
  if (csvUrls.has(name)) URL.revokeObjectURL(csvUrls.get(name));
  const url = URL.createObjectURL(new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv" }));
  csvUrls.set(name, url);
  link.href = url;
  link.setAttribute("download", fileName);
}

const FIGURES = [
  ["calls", (t) => t.calls, count],
  ["answered", (t) => t.answered, count],
  ["answer-rate", (t) => t.answer_rate, pct],
  ["answer-p50", (t) => t.time_to_answer_ms.p50, msText],
  ["answer-p90", (t) => t.time_to_answer_ms.p90, msText],
  ["abandoned", (t) => t.abandoned, count],
  ["abandon-rate", (t) => t.abandon_rate, pct],
  ["voicemail", (t) => t.voicemail, count],
  ["ai-calls", (t) => t.ai_calls, count],
  ["ai-containment", (t) => t.ai_containment, pct],
  ["transferred", (t) => t.transferred, count],
  ["transfer-rate", (t) => t.transfer_rate, pct],
  ["handle-time", (t) => t.average_handle_time_secs, secsText],
  ["cost-total", (t) => t.cost.total_usd, money],
  ["cost-per-call", (t) => t.cost.per_call_usd, usd],
  ["cost-per-minute", (t) => t.cost.per_minute_usd, usd],
];

function render(answer) {
  const t = answer.totals;
  for (const [name, pick, format] of FIGURES) {
    const box = $(`figure-${name}`);
    const value = pick(t);
    box.dataset.value = raw(value);
    box.textContent = format(value);
  }
  const o = answer.outbound;
  for (const [name, value, format] of [
    ["outbound-calls", o.calls, count],
    ["objective-met", o.objective_met, count],
    ["objective-met-rate", o.objective_met_rate, pct],
  ]) {
    $(`figure-${name}`).dataset.value = raw(value);
    $(`figure-${name}`).textContent = format(value);
  }

  // Per group: calls and answered.
  const keyName = answer.group_by === "assistant" ? "no assistant" : "–";
  const groups = answer.groups.map((g) => ({ ...g, label: g.key ?? keyName }));
  $("chart-groups").replaceChildren(
    barChart(`Calls and answered by ${answer.group_by}`,
      [{ name: "Calls", cls: "s1" }, { name: "Answered", cls: "s2" }],
      groups.map((g) => ({ label: g.label, values: [g.calls, g.answered] })), count),
  );
  tableAndCsv("groups", [
    { name: answer.group_by, shown: (g) => g.label, raw: (g) => g.key },
    { name: "calls", shown: (g) => count(g.calls), raw: (g) => g.calls },
    { name: "answered", shown: (g) => count(g.answered), raw: (g) => g.answered },
    { name: "answer_rate", shown: (g) => pct(g.answer_rate), raw: (g) => g.answer_rate },
    { name: "answer_p50_ms", shown: (g) => msText(g.time_to_answer_ms.p50), raw: (g) => g.time_to_answer_ms.p50 },
    { name: "answer_p90_ms", shown: (g) => msText(g.time_to_answer_ms.p90), raw: (g) => g.time_to_answer_ms.p90 },
    { name: "abandon_rate", shown: (g) => pct(g.abandon_rate), raw: (g) => g.abandon_rate },
    { name: "voicemail", shown: (g) => count(g.voicemail), raw: (g) => g.voicemail },
    { name: "ai_containment", shown: (g) => pct(g.ai_containment), raw: (g) => g.ai_containment },
    { name: "transfer_rate", shown: (g) => pct(g.transfer_rate), raw: (g) => g.transfer_rate },
    { name: "average_handle_time_secs", shown: (g) => secsText(g.average_handle_time_secs), raw: (g) => g.average_handle_time_secs },
    { name: "cost_usd", shown: (g) => money(g.cost.total_usd), raw: (g) => g.cost.total_usd },
  ], groups, `calls-by-${answer.group_by}-${answer.from}-${answer.to}.csv`);

  // Human vs AI: cost per call and per minute side by side.
  const routes = ["human", "ai"].map((route) => ({ route, ...answer.cost_by_route[route] }));
  $("chart-cost").replaceChildren(
    barChart("Cost per call and per minute, human vs AI",
      [{ name: "Per call", cls: "s1" }, { name: "Per minute", cls: "s2" }],
      routes.map((r) => ({ label: r.route === "ai" ? "AI" : "Human", values: [r.per_call_usd, r.per_minute_usd] })), usd),
  );
  tableAndCsv("cost", [
    { name: "route", shown: (r) => (r.route === "ai" ? "AI" : "Human"), raw: (r) => r.route },
    { name: "calls", shown: (r) => count(r.calls), raw: (r) => r.calls },
    { name: "priced_calls", shown: (r) => count(r.priced_calls), raw: (r) => r.priced_calls },
    { name: "total_usd", shown: (r) => money(r.total_usd), raw: (r) => r.total_usd },
    { name: "per_call_usd", shown: (r) => usd(r.per_call_usd), raw: (r) => r.per_call_usd },
    { name: "per_minute_usd", shown: (r) => usd(r.per_minute_usd), raw: (r) => r.per_minute_usd },
  ], routes, `cost-by-route-${answer.from}-${answer.to}.csv`);

  // Outbound dispositions.
  const dispositions = Object.entries(o.dispositions).map(([status, calls]) => ({ status, calls }));
  $("chart-outbound").replaceChildren(
    barChart("Outbound calls by disposition", [{ name: "Calls", cls: "s1" }],
      dispositions.map((d) => ({ label: d.status, values: [d.calls] })), count),
  );
  tableAndCsv("outbound", [
    { name: "disposition", shown: (d) => d.status, raw: (d) => d.status },
    { name: "calls", shown: (d) => count(d.calls), raw: (d) => d.calls },
  ], dispositions, `outbound-${answer.from}-${answer.to}.csv`);

  $("analytics-range").textContent = `${answer.from} to ${answer.to} · ${answer.workspace ?? "every workspace"} · by ${answer.group_by}`;
  $("analytics").dataset.loaded = `${answer.from}/${answer.to}/${answer.workspace ?? ""}/${answer.group_by}`;
}

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

function readForm() {
  return {
    from: $("analytics-from").value,
    to: $("analytics-to").value,
    workspace: $("analytics-workspace").value.trim(),
    group_by: $("analytics-group").value,
  };
}

function clearErrors() {
  for (const box of $("analytics-form").querySelectorAll(".field-error")) {
    box.hidden = true;
    box.textContent = "";
  }
}

async function load(query, { push }) {
  clearErrors();
  const params = new URLSearchParams({ from: query.from, to: query.to, group_by: query.group_by });
  if (query.workspace) params.set("workspace", query.workspace);
  try {
    const answer = await api(`/api/analytics/summary?${params}`);
    render(answer);
    const url = `/app/admin/analytics?${params}`;
    if (push && `${location.pathname}${location.search}` !== url) history.pushState(null, "", url);
  } catch (error) {
    if (error.message === "signed out") return;
    const field = (error.body && error.body.field) || "form";
    const box = $("analytics-form").querySelector(`[data-testid="error-analytics-${CSS.escape(field)}"]`)
      || $("error-analytics-form");
    box.textContent = error.message;
    box.hidden = false;
  }
}

/// Shows the view for the current URL; the form and the URL's query agree.
export async function analytics(restApi) {
  api = restApi;
  const search = new URLSearchParams(location.search);
  const today = new Date();
  const monthAgo = new Date(today.getTime() - 29 * 86_400_000);
  const group = search.get("group_by");
  $("analytics-from").value = search.get("from") || isoDay(monthAgo);
  $("analytics-to").value = search.get("to") || isoDay(today);
  $("analytics-workspace").value = search.get("workspace") || "";
  $("analytics-group").value = GROUPINGS.includes(group) ? group : "day";
  if (!wired) {
    wired = true;
    $("analytics-form").addEventListener("submit", (event) => {
      event.preventDefault();
      load(readForm(), { push: true });
    });
  }
  await load(readForm(), { push: false });
  performance.mark("analytics-ready");
}
