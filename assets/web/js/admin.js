// The admin's pages (`/app/admin`), with the admin token sign-in left in
// sessionStorage:
//   /app/admin              flags to review, most severe first (open, resolved, all)
//   /app/admin/flags/{id}   one flag: its evidence, its call's transcript with the
//                           flagged turns marked, and the resolve form
//   /app/admin/users        users with status, quota use, spend and open flags;
//                           suspend / reinstate with a reason
//   /app/admin/numbers      the number directory, each number's route, the
//                           cut-over of a share of numbers and its rollback
//                           (js/admin-numbers.js)
//   /app/admin/assistants   a card per assistant and agent with its number (or
//                           "Assign a number"), and the new-assistant wizard
//                           (js/admin-assistants.js)
//   /app/admin/audit        the audit trail, newest first
//   /app/admin/analytics    call analytics for a range (js/admin-analytics.js)
// Everything comes from the admin REST routes (docs/protocol.md §4a).
import { requireSession, signOut } from "./session.js";
import { formatNumber } from "./phone.js";
import {
  clearFieldErrors, el, label, money, pageViews, restClient, showFieldError, when,
} from "./rest.js";
import { numbersView } from "./admin-numbers.js";
import { analytics } from "./admin-analytics.js";
import { assistantsView } from "./admin-assistants.js";

const USERS_PAGE = 50;
const $ = (id) => document.getElementById(id);
let api = null;
let shown = 0;
let flagShown = null;

function notice(text, kind = "error") {
  const box = $("notice");
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = !text;
}

// ---- flags -------------------------------------------------------------------

async function flags(view) {
  const resolved = new URLSearchParams(location.search).get("resolved");
  const filter = ["true", "false", ""].includes(resolved) ? resolved : "false";
  $("flag-filter").value = filter;
  const params = new URLSearchParams({ limit: "200" });
  if (filter) params.set("resolved", filter);
  const answer = await api(`/api/flags?${params}`);
  if (view !== shown) return;
  $("flag-rows").replaceChildren(
    ...answer.flags.map((flag) =>
      el("tr", { "data-testid": "flag-row", dataset: { flagId: flag.id, severity: flag.severity } },
        el("td", {}, el("span", { class: `status sev-${flag.severity}`, text: flag.severity })),
        el("td", { text: label(flag.type) }),
        el("td", { text: flag.reason }),
        el("td", { text: flag.user_id }),
        el("td", { text: when(flag.created_at) }),
        el("td", {}, el("a", { href: `/app/admin/flags/${encodeURIComponent(flag.id)}`, "data-nav": "", "data-testid": "review" }, flag.resolved ? "View" : "Review")))),
  );
  document.querySelector('[data-empty="flags"]').hidden = answer.flags.length > 0;
}

function renderResolution(flag) {
  const resolution = flag.resolution;
  $("flag-resolution").textContent = resolution
    ? `Resolved (${label(resolution.action)}) by ${resolution.by} on ${when(resolution.at)}${resolution.notes ? `: ${resolution.notes}` : ""}`
    : "Open.";
  $("flag-resolution").dataset.action = resolution ? resolution.action : "";
  $("resolve-form").hidden = !!resolution;
}

async function flagPage(view, id) {
  const flag = await api(`/api/flags/${encodeURIComponent(id)}`);
  if (view !== shown) return;
  flagShown = flag;
  $("flag-title").textContent = `Flag: ${label(flag.type)}`;
  $("flag-severity").textContent = flag.severity;
  $("flag-severity").className = `status sev-${flag.severity}`;
  $("flag-type").textContent = label(flag.type);
  $("flag-reason").textContent = flag.reason;
  const facts = el("dl");
  for (const [name, value] of [["User", flag.user_id], ["Raised", when(flag.created_at)], ["Found by", flag.auto_detected ? "the engine" : "a person"]]) {
    facts.append(el("dt", { text: name }), el("dd", { text: value }));
  }
  $("flag-facts").replaceChildren(...facts.childNodes);
  $("flag-evidence").textContent = JSON.stringify(flag.evidence, null, 2);
  renderResolution(flag);
  clearFieldErrors($("resolve-form"));
  $("flag-call").hidden = !flag.call;
  if (!flag.call) return;
  const call = await api(`/api/calls/${encodeURIComponent(flag.call.id)}`);
  if (view !== shown) return;
  // The turns the flag quotes, by their place in the transcript.
  const flagged = new Set(((flag.evidence && flag.evidence.turns) || []).map((turn) => turn.seq));
  $("flag-call-summary").textContent = `${formatNumber(call.to)} · ${label(call.disposition || call.status)}${call.summary ? ` · ${call.summary}` : ""}`;
  $("transcript").replaceChildren(
    ...(call.transcript || []).map((turn) =>
      el("li", { "data-testid": "turn", dataset: { role: turn.role, seq: String(turn.seq), flagged: String(flagged.has(turn.seq)) } },
        el("span", { class: "speaker", text: turn.role === "assistant" ? "Assistant" : "Callee" }),
        el("time", { datetime: turn.at, text: new Date(turn.at).toLocaleTimeString() }),
        el("span", { class: "text", text: turn.text }))),
  );
}

async function resolveFlag(event) {
  event.preventDefault();
  const form = $("resolve-form");
  clearFieldErrors(form);
  const body = { action: $("resolve-action").value };
  const notes = $("resolve-notes").value.trim();
  if (notes) body.notes = notes;
  $("resolve-submit").disabled = true;
  try {
    const flag = await api(`/api/flags/${encodeURIComponent(flagShown.id)}/resolve`, { method: "POST", body });
    renderResolution(flag);
  } catch (error) {
    if (error.message === "signed out") return;
    if (error.body && error.body.flag) renderResolution(error.body.flag);
    showFieldError(form, error.body && error.body.field, error.message);
  } finally {
    $("resolve-submit").disabled = false;
  }
}

// ---- users -------------------------------------------------------------------

function usersPage() {
  return Math.max(1, Number.parseInt(new URLSearchParams(location.search).get("page") || "1", 10) || 1);
}

function userRow(user) {
  const quota = user.quota || {};
  const reason = el("input", { "data-testid": "reason", "aria-label": `Reason for ${user.name}`, placeholder: "Reason", maxlength: "2000" });
  const suspended = user.status !== "active";
  const button = el("button", { type: "button", "data-testid": suspended ? "reinstate" : "suspend" }, suspended ? "Reinstate" : "Suspend");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const changed = await api(`/api/users/${encodeURIComponent(user.id)}/${suspended ? "reinstate" : "suspend"}`, {
        method: "POST",
        body: { reason: reason.value },
      });
      notice("");
      row.replaceWith(userRow(changed));
    } catch (error) {
      if (error.message !== "signed out") notice(error.message);
      button.disabled = false;
    }
  });
  const row = el("tr", { "data-testid": "user-row", dataset: { userId: user.id, status: user.status } },
    el("td", {}, el("strong", { text: user.name }), el("br"), el("span", { class: "muted", text: user.email })),
    el("td", { text: user.plan }),
    el("td", { "data-testid": "user-status", text: user.status }),
    el("td", { text: `${quota.calls_last_hour ?? 0} of ${quota.calls_per_hour ?? "–"}` }),
    el("td", { text: `${quota.calls_last_day ?? 0} of ${quota.calls_per_day ?? "–"}` }),
    el("td", { text: `${money(quota.month_spend_usd)} of ${money(quota.monthly_budget_usd)}` }),
    el("td", { "data-testid": "user-open-flags", text: String((user.open_flags || []).length) }),
    el("td", {}, reason, " ", button));
  return row;
}

async function users(view) {
  const page = usersPage();
  const params = new URLSearchParams({ limit: String(USERS_PAGE), offset: String((page - 1) * USERS_PAGE) });
  const answer = await api(`/api/users?${params}`);
  if (view !== shown) return;
  $("user-rows").replaceChildren(...answer.users.map(userRow));
  document.querySelector('[data-empty="users"]').hidden = answer.users.length > 0;
  const pages = Math.max(1, Math.ceil(answer.total / USERS_PAGE));
  $("users-info").textContent = `Page ${page} of ${pages} · ${answer.total} ${answer.total === 1 ? "user" : "users"}`;
  $("users-prev").disabled = page <= 1;
  $("users-next").disabled = !answer.has_more;
}

// ---- audit -------------------------------------------------------------------

async function audit(view) {
  const answer = await api("/api/audit?limit=1000");
  if (view !== shown) return;
  const entries = [...answer.entries].reverse();
  $("audit-rows").replaceChildren(
    ...entries.map((entry) =>
      el("tr", { "data-testid": "audit-row", dataset: { action: entry.action } },
        el("td", { text: when(entry.at) }),
        el("td", { text: entry.actor }),
        el("td", { text: label(entry.action) }),
        el("td", { text: entry.user_id || "" }),
        el("td", { class: "detail", text: entry.detail ? JSON.stringify(entry.detail) : "" }))),
  );
  document.querySelector('[data-empty="audit"]').hidden = entries.length > 0;
}

// ---- routing -------------------------------------------------------------------

const NAV = {
  flags: "nav-flags", flag: "nav-flags", users: "nav-users", numbers: "nav-numbers",
  assistants: "nav-assistants", audit: "nav-audit", analytics: "nav-analytics",
};
let views = null;

function show(section) {
  views.show(section, NAV[section]);
}

async function route() {
  shown += 1;
  const view = shown;
  notice("");
  const path = location.pathname.replace(/\/+$/, "");
  const flag = path.match(/^\/app\/admin\/flags\/([^/]+)$/);
  try {
    if (flag) {
      show("flag");
      await flagPage(view, decodeURIComponent(flag[1]));
    } else if (path === "/app/admin/users") {
      show("users");
      await users(view);
    } else if (path === "/app/admin/numbers") {
      show("numbers");
      await numbersView(api, () => view === shown);
    } else if (path === "/app/admin/assistants") {
      show("assistants");
      await assistantsView(api, () => view === shown);
    } else if (path === "/app/admin/analytics") {
      show("analytics");
      await analytics(api);
    } else if (path === "/app/admin/audit") {
      show("audit");
      await audit(view);
    } else {
      show("flags");
      await flags(view);
    }
  } catch (error) {
    if (view !== shown || error.message === "signed out") return;
    notice(error.status === 404 ? "No such flag." : `Could not load this page: ${error.message}`);
  }
}

function go(url) {
  views.go(url);
}

async function main() {
  const auth = await requireSession("admin");
  api = restClient(auth.token);
  $("sign-out").addEventListener("click", signOut);
  views = pageViews(Object.keys(NAV), route);
  $("flag-filter").addEventListener("change", () => go(`/app/admin?resolved=${encodeURIComponent($("flag-filter").value)}`));
  $("resolve-form").addEventListener("submit", resolveFlag);
  $("users-prev").addEventListener("click", () => go(`/app/admin/users?page=${usersPage() - 1}`));
  $("users-next").addEventListener("click", () => go(`/app/admin/users?page=${usersPage() + 1}`));
  await route();
}

main().catch((error) => {
  console.error("admin: failed to start", error);
  notice("The page could not start: reload it.");
});
