// A user's pages (`/app`): the dashboard (this month's calls, success rate,
// minutes, spend against the budget, the quotas left, recent calls), the list of
// their outbound calls (status filter, pages of 20) and a call's page (status,
// kept current while the call runs through its event stream, GET
// /api/calls/{id}/events, polling if that fails; then its outcome, summary, transcript,
// recording and estimated-vs-actual cost). One page; the path names the view:
//   /app              the dashboard
//   /app/calls        the list (?status=…&page=…)
//   /app/calls/{id}   one call
//   /app/new          the new-call form: the number checked as it is typed by
//                     GET /api/calls/outbound/check (the engine's rules, not a
//                     copy here), with the callee's local time, calling hours and
//                     the estimate; the attestation's boxes in their current
//                     wording; the engine's refusals shown next to the field
// It needs a user's API key that sign-in left in sessionStorage; everything it
// shows comes from the REST API with that key (docs/protocol.md §4a, §6).
import { requireSession, signOut } from "./session.js";
import { formatNumber } from "./phone.js";
import {
  clearFieldErrors, el, label, money, pageViews, restClient, showFieldError, when,
} from "./rest.js";

const PAGE = 20;
// A call in one of these states changes no more: its page stops refreshing.
const OVER = new Set([
  "completed", "busy", "no_answer", "failed", "canceled", "voicemail",
  "interrupted", "not_dialed_window_closed",
]);
const STATUSES = [
  "queued", "scheduled", "dialing", "dial_unknown", "ringing", "in_progress", ...OVER,
];
const REFRESH_MS = 2000;
// After a call ends, how many more refreshes wait for its summary and price.
const SETTLE_REFRESHES = 30;
let afterEnd = 0;
// Ends the call page's event stream (a view change).
let stopFollowing = () => {};

const $ = (id) => document.getElementById(id);
let auth = null;
let api = null;
let refresh = null;
let shown = 0; // bumped on every view change: late answers of an old view are dropped

function notice(text, kind = "error") {
  const box = $("notice");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

function callLink(call) {
  return el("a", { href: `/app/calls/${encodeURIComponent(call.id)}`, "data-nav": "" }, formatNumber(call.to));
}

// ---- the dashboard -----------------------------------------------------------

async function dashboard(view) {
  const [user, recent] = await Promise.all([
    api(`/api/users/${encodeURIComponent(auth.session.user_id)}`),
    api(`/api/calls/outbound?limit=5`),
  ]);
  if (view !== shown) return;
  $("me").textContent = `${user.name} · ${user.plan}`;
  const month = user.month || {};
  const quota = user.quota || {};
  $("dashboard").querySelector('[data-testid="stat-calls"]').textContent = String(month.calls ?? 0);
  $("dashboard").querySelector('[data-testid="stat-success"]').textContent =
    month.finished ? `${Math.round((100 * month.completed) / month.finished)} %` : "–";
  $("dashboard").querySelector('[data-testid="stat-minutes"]').textContent = (month.minutes ?? 0).toFixed(1);
  $("dashboard").querySelector('[data-testid="stat-spend"]').textContent =
    `${money(quota.month_spend_usd)} of ${money(quota.monthly_budget_usd)}`;
  const left = (limit, used) => (typeof limit === "number" ? String(Math.max(0, limit - used)) : "–");
  $("dashboard").querySelector('[data-testid="stat-left-hour"]').textContent = left(quota.calls_per_hour, quota.calls_last_hour);
  $("dashboard").querySelector('[data-testid="stat-left-day"]').textContent = left(quota.calls_per_day, quota.calls_last_day);
  $("recent-calls").replaceChildren(
    ...recent.calls.map((call) =>
      el("li", { "data-testid": "recent-call", dataset: { callId: call.id } },
        callLink(call), " ", el("span", { class: "status", text: label(call.status) }), " ",
        el("span", { class: "muted", text: when(call.created_at) }))),
  );
  document.querySelector('[data-empty="recent"]').hidden = recent.calls.length > 0;
}

// ---- the list ----------------------------------------------------------------

function listQuery() {
  const params = new URLSearchParams(location.search);
  const status = STATUSES.includes(params.get("status")) ? params.get("status") : "";
  const page = Math.max(1, Number.parseInt(params.get("page") || "1", 10) || 1);
  return { status, page };
}

function listUrl({ status, page }) {
  const params = new URLSearchParams();
  if (status) params.set("status", status);
  if (page > 1) params.set("page", String(page));
  const query = params.toString();
  return `/app/calls${query ? `?${query}` : ""}`;
}

async function list(view) {
  const { status, page } = listQuery();
  $("status-filter").value = status;
  const params = new URLSearchParams({ limit: String(PAGE), offset: String((page - 1) * PAGE) });
  if (status) params.set("status", status);
  const answer = await api(`/api/calls/outbound?${params}`);
  if (view !== shown) return;
  $("call-rows").replaceChildren(
    ...answer.calls.map((call) =>
      el("tr", { "data-testid": "call-row", dataset: { callId: call.id, status: call.status } },
        el("td", { text: when(call.created_at) }),
        el("td", {}, callLink(call)),
        el("td", { text: [call.contact_name, call.contact_company].filter(Boolean).join(", ") }),
        el("td", { text: label(call.status) }),
        el("td", { text: money(call.estimated_cost) }))),
  );
  document.querySelector('[data-empty="calls"]').hidden = answer.calls.length > 0;
  const pages = Math.max(1, Math.ceil(answer.total / PAGE));
  $("page-info").textContent = `Page ${page} of ${pages} · ${answer.total} ${answer.total === 1 ? "call" : "calls"}`;
  $("page-prev").disabled = page <= 1;
  $("page-next").disabled = !answer.has_more;
}

// ---- one call ----------------------------------------------------------------

function fact(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  list.append(el("dt", { text: name }), el("dd", { text: String(value) }));
}

function renderOutcome(call) {
  const box = $("call-outcome");
  const outcome = call.task_outcome;
  if (!outcome) {
    box.replaceChildren(el("p", { class: "muted", text: call.task_outcome_error || "Not yet." }));
    return;
  }
  box.replaceChildren(
    el("p", { "data-testid": "objective-met", dataset: { met: String(!!outcome.objective_met) }, text: outcome.objective_met ? "Objective met" : "Objective not met" }),
    el("p", { text: outcome.key_findings || "" }),
    el("ul", {}, ...(outcome.evidence || []).map((quote) => el("li", {}, el("q", { text: quote })))),
  );
}

function renderCost(cost) {
  const rows = [];
  const estimated = (cost && cost.estimated) || {};
  const actual = (cost && cost.actual) || {};
  for (const [part, name] of [["telephony", "Phone line"], ["realtime_model", "Voice model"], ["reasoning_model", "Reasoning model"]]) {
    const real = actual[part];
    const amount = real && typeof real === "object" ? real.amount : real;
    const status = real && typeof real === "object" ? real.status : null;
    rows.push(el("tr", { dataset: { part } }, el("th", { scope: "row", text: name }),
      el("td", { text: money(estimated[part]) }),
      el("td", { text: `${money(amount)}${status === "estimated" ? " (so far)" : ""}` })));
  }
  rows.push(el("tr", { dataset: { part: "total" } }, el("th", { scope: "row", text: "Total" }),
    el("td", { "data-testid": "cost-estimated", text: money(estimated.total) }),
    el("td", { "data-testid": "cost-actual", text: money(actual.total) })));
  $("cost-rows").replaceChildren(...rows);
}

let recordingFor = null;

async function loadRecording(call) {
  if (!call.recording_url || recordingFor === call.id) return;
  recordingFor = call.id;
  // The recording needs the key, which an <audio src> cannot send: fetch it.
  const response = await fetch(`/api/calls/${encodeURIComponent(call.id)}/recording`, {
    headers: { Authorization: `Bearer ${auth.token}` },
  });
  if (!response.ok) return;
  $("recording-player").src = URL.createObjectURL(await response.blob());
  $("recording").hidden = false;
}

async function callPage(view, id) {
  let call;
  try {
    call = await api(`/api/calls/${encodeURIComponent(id)}`);
  } catch (error) {
    if (view === shown && error.status === 404) notice("No such call.");
    throw error;
  }
  if (view !== shown) return;
  renderCall(call);
  if (settledCall(call)) return;
  // Live: the engine's event stream of the call; should it fail, polling.
  $("call-live").hidden = false;
  try {
    await followCall(view, id);
  } catch (error) {
    if (error.name === "AbortError" || view !== shown) return;
    console.warn("call events unavailable; polling", error.message);
    pollCall(view, id);
    return;
  }
  if (view === shown) $("call-live").hidden = true;
}

// The call's server-sent events (`GET /api/calls/{id}/events`), read with fetch
// (which can send the key) until the engine ends the stream.
async function followCall(view, id) {
  const controller = new AbortController();
  stopFollowing = () => controller.abort();
  const response = await fetch(`/api/calls/${encodeURIComponent(id)}/events`, {
    headers: { Authorization: `Bearer ${auth.token}`, Accept: "text/event-stream" },
    signal: controller.signal,
    cache: "no-store",
  });
  if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = block.split("\n").filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart()).join("\n");
      if (data && view === shown) renderCall(JSON.parse(data));
      end = buffer.indexOf("\n\n");
    }
  }
}

// Without the stream: read the call every 2 s while it runs, then until its
// result is in, or for a minute at most.
async function pollCall(view, id) {
  let call;
  try {
    call = await api(`/api/calls/${encodeURIComponent(id)}`);
  } catch {
    call = null;
  }
  if (view !== shown) return;
  if (call) renderCall(call);
  const over = call && OVER.has(call.disposition || call.status);
  afterEnd = over ? afterEnd + 1 : 0;
  const settled = call && over && (settledCall(call) || afterEnd > SETTLE_REFRESHES);
  $("call-live").hidden = !!settled;
  if (!settled) refresh = setTimeout(() => pollCall(view, id), REFRESH_MS);
}

// Over, summarised when it was answered, and priced when it was dialed: it
// changes no more.
function settledCall(call) {
  return OVER.has(call.disposition || call.status)
    && (call.analyzed_at || !call.answered_at) && (call.reconciled_at || !call.dialed_at);
}

function renderCall(call) {
  $("call-title").textContent = `Call to ${formatNumber(call.to)}`;
  const status = $("call-status");
  status.textContent = label(call.disposition || call.status);
  status.dataset.status = call.disposition || call.status;
  const facts = el("dl");
  fact(facts, "Contact", [call.contact_name, call.contact_company].filter(Boolean).join(", "));
  fact(facts, "Purpose", call.purpose);
  fact(facts, "Objective", call.objective);
  fact(facts, "From", call.from && formatNumber(call.from));
  fact(facts, "Scheduled for", call.scheduled_for && when(call.scheduled_for));
  fact(facts, "Answered", call.answered_at && when(call.answered_at));
  fact(facts, "Ended", call.ended_at && when(call.ended_at));
  fact(facts, "Answered by", call.answered_by);
  fact(facts, "Why", call.reason);
  $("call-facts").replaceChildren(...facts.childNodes);
  renderOutcome(call);
  $("call-summary").textContent = call.summary || "Not yet.";
  $("call-summary").classList.toggle("muted", !call.summary);
  const turns = call.transcript || [];
  $("transcript").replaceChildren(
    ...turns.map((turn) =>
      el("li", { "data-testid": "turn", dataset: { role: turn.role } },
        el("span", { class: "speaker", text: turn.role === "assistant" ? "Assistant" : "Callee" }),
        el("time", { datetime: turn.at, text: new Date(turn.at).toLocaleTimeString() }),
        el("span", { class: "text", text: turn.text }))),
  );
  document.querySelector('[data-empty="transcript"]').hidden = turns.length > 0;
  renderCost(call.cost);
  loadRecording(call).catch((error) => console.warn("recording", error.message));
}

// ---- the new-call form ------------------------------------------------------------

const OBJECTIVE_MAX = 500;
const CHECK_DELAY_MS = 300;
let checkTimer = null;
let checkSeq = 0;
let wordingVersion = null;

const fieldError = (field, message) => showFieldError($("new-form"), field, message);
const clearErrors = (only) => clearFieldErrors($("new-form"), only);

function scheduleAt() {
  const later = document.querySelector('input[name="when"]:checked').value === "later";
  const raw = $("new-schedule-at").value;
  if (!later || !raw) return null;
  const at = new Date(raw);
  return Number.isNaN(at.getTime()) ? "" : at.toISOString();
}

function renderBoxes(attestation) {
  if (!attestation || attestation.version === wordingVersion) return;
  wordingVersion = attestation.version;
  document.querySelector('[data-testid="attestation-version"]').textContent = `version ${attestation.version}`;
  $("attestation-boxes").replaceChildren(
    ...attestation.boxes.map((box) => el("label", { class: "box" },
      el("input", { type: "checkbox", "data-testid": `attest-${box.field}`, "data-box": box.field }),
      ` ${box.text}`)),
  );
}

function localTimeOf(callee) {
  // "10:43 on Wed 2 Dec" in the callee's zone (the engine's offset, not the browser's).
  const match = /T(\d{2}:\d{2})/.exec(callee.local_time);
  return `${match ? match[1] : callee.local_time} (${callee.time_zone})`;
}

async function runCheck() {
  const seq = ++checkSeq;
  const to = $("new-to").value.trim();
  const at = scheduleAt();
  const params = new URLSearchParams();
  if (to) params.set("to", to);
  if (at) params.set("schedule_at", at);
  let answer;
  try {
    answer = await api(`/api/calls/outbound/check?${params}`);
  } catch (error) {
    if (seq !== checkSeq) return;
    $("to-info").textContent = "";
    $("new-estimate").textContent = "–";
    if (error.status === 400 && error.body.field) {
      clearErrors(error.body.field);
      fieldError(error.body.field, error.message);
    }
    return;
  }
  if (seq !== checkSeq) return;
  clearErrors("to");
  clearErrors("schedule_at");
  renderBoxes(answer.attestation);
  const hours = answer.calling_hours;
  if (!answer.to) {
    $("to-info").textContent = "";
    $("hours-info").textContent = `Calls ring between ${hours.start} and ${hours.end}, the callee's time.`;
    $("new-estimate").textContent = "–";
    return;
  }
  const where = answer.callee.map(localTimeOf).join(" or ");
  $("to-info").textContent = `${formatNumber(answer.to)} · ${at ? "then" : "now"} ${where}`
    + (answer.do_not_call ? " · on a do-not-call list: it will be refused" : "");
  $("to-info").dataset.e164 = answer.to;
  const hoursInfo = $("hours-info");
  hoursInfo.dataset.open = String(!!hours.open);
  if (hours.open) {
    hoursInfo.textContent = `Inside calling hours (${hours.start}–${hours.end} the callee's time).`;
  } else if (hours.opens_at) {
    hoursInfo.textContent = `Outside calling hours (${hours.start}–${hours.end} the callee's time): it will ring at ${when(hours.opens_at)}.`;
  } else {
    hoursInfo.textContent = hours.error || "No calling hours for this number.";
  }
  $("new-estimate").textContent = money(answer.estimated_cost);
}

function queueCheck() {
  clearTimeout(checkTimer);
  checkTimer = setTimeout(() => runCheck().catch((error) => console.warn("check", error.message)), CHECK_DELAY_MS);
}

function formBody() {
  const text = (id) => $(id).value.trim();
  const body = {
    to: text("new-to"),
    purpose: $("new-purpose").value,
    objective: $("new-objective").value.trim(),
    attestation: { signature_full_name: text("new-signature") },
  };
  if (text("new-contact-name")) body.contact_name = text("new-contact-name");
  if (text("new-contact-company")) body.contact_company = text("new-contact-company");
  if (text("new-organization")) body.attestation.signature_organization = text("new-organization");
  // An unticked box is sent as false: the engine names it.
  for (const box of document.querySelectorAll("[data-box]")) body.attestation[box.dataset.box] = box.checked;
  if (wordingVersion) body.attestation.wording_version = wordingVersion;
  const at = scheduleAt();
  if (at !== null) body.schedule_at = at;
  return body;
}

async function submitCall(event) {
  event.preventDefault();
  clearErrors();
  const button = $("new-submit");
  button.disabled = true;
  try {
    const placed = await api("/api/calls/outbound", { method: "POST", body: formBody() });
    go(`/app/calls/${encodeURIComponent(placed.id)}`);
  } catch (error) {
    if (error.message === "signed out") return;
    const body = error.body || {};
    if (body.field) fieldError(body.field, error.message);
    else if (body.code === "do-not-call") fieldError("to", error.message);
    else if (body.code === "objective-refused") fieldError("objective", error.message);
    else fieldError("form", error.message);
    if (body.code === "attestation-outdated") {
      renderBoxes({ version: body.current_version, boxes: [] });
      runCheck().catch(() => {});
    }
  } finally {
    button.disabled = false;
  }
}

async function newCall(view) {
  await runCheck();
  if (view !== shown) return;
  $("new-to").focus();
}

function bindForm() {
  $("new-to").addEventListener("input", queueCheck);
  $("new-schedule-at").addEventListener("change", queueCheck);
  for (const radio of document.querySelectorAll('input[name="when"]')) {
    radio.addEventListener("change", () => {
      $("new-schedule-at").hidden = document.querySelector('input[name="when"]:checked').value !== "later";
      queueCheck();
    });
  }
  $("new-objective").addEventListener("input", () => {
    const count = [...$("new-objective").value.trim()].length;
    const counter = $("objective-count");
    counter.textContent = `${count} / ${OBJECTIVE_MAX}`;
    counter.dataset.over = String(count > OBJECTIVE_MAX);
  });
  $("new-form").addEventListener("submit", submitCall);
}

// ---- routing -------------------------------------------------------------------

const NAV = { dashboard: "nav-dashboard", calls: "nav-calls", call: "nav-calls", new: "nav-new" };
let views = null;

function show(section) {
  views.show(section, NAV[section]);
}

async function route() {
  clearTimeout(refresh);
  stopFollowing();
  afterEnd = 0;
  shown += 1;
  const view = shown;
  notice("");
  const path = location.pathname.replace(/\/+$/, "");
  const match = path.match(/^\/app\/calls\/([^/]+)$/);
  try {
    if (match) {
      show("call");
      await callPage(view, decodeURIComponent(match[1]));
    } else if (path === "/app/new") {
      show("new");
      await newCall(view);
    } else if (path === "/app/calls") {
      show("calls");
      await list(view);
    } else {
      show("dashboard");
      await dashboard(view);
    }
  } catch (error) {
    if (view === shown && error.message !== "signed out" && error.status !== 404) {
      notice(`Could not load this page: ${error.message}`);
    }
  }
}

function go(url) {
  views.go(url);
}

async function main() {
  auth = await requireSession("user");
  api = restClient(auth.token);
  $("sign-out").addEventListener("click", signOut);
  views = pageViews(Object.keys(NAV), route);
  const filter = $("status-filter");
  for (const status of STATUSES) filter.append(el("option", { value: status, text: label(status) }));
  filter.addEventListener("change", () => go(listUrl({ status: filter.value, page: 1 })));
  $("page-prev").addEventListener("click", () => { const q = listQuery(); go(listUrl({ ...q, page: q.page - 1 })); });
  $("page-next").addEventListener("click", () => { const q = listQuery(); go(listUrl({ ...q, page: q.page + 1 })); });
  bindForm();
  await route();
}

main().catch((error) => {
  console.error("app: failed to start", error);
  notice("The page could not start: reload it.");
});
