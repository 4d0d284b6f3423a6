// The admin's Numbers view (`/app/admin/numbers`), shown by js/admin.js:
//   - the directory (`GET /api/directory`: every number of every provider account,
//     with its workspace, status, agent or assistant and live route) and the live
//     numbers no provider account holds (`GET /api/numbers`), filtered by
//     workspace, provider and status;
//   - per number, its route: human (every available agent), an AI assistant of
//     its workspace (`GET /api/assistants`) or voicemail
//     (`PUT /api/numbers/{e164}/route?workspace=W`); a refusal next to the row;
//   - the cut-over of a share of a workspace's numbers
//     (`POST /api/numbers/migrate`) and its rollback (`POST /api/numbers/rollback`):
//     a dry run first (`"dry_run": true`) lists exactly the numbers that will
//     move, and only Confirm changes anything.
import { formatNumber } from "./phone.js";
import { el, label } from "./rest.js";

const $ = (id) => document.getElementById(id);

let api = null;
let current = () => true;
let wired = false;
let rows = [];
let assistants = [];
// What the last preview was asked: Confirm sends exactly this.
let migratePlan = null;
let rollbackPlan = null;

const HUMAN = { kind: "agents", agent_ids: [] };

function routeText(route) {
  if (!route) return "not live";
  if (route.kind === "voicemail") return "voicemail";
  if (route.kind === "ai") {
    const assistant = assistants.find((a) => a.id === route.assistant_id);
    return `AI: ${assistant ? assistant.name : route.assistant_id}`;
  }
  const ids = route.agent_ids || [];
  return ids.length ? `human: ${ids.join(", ")}` : "human (every agent)";
}

function holder(row) {
  if (row.agent_name || row.agent_id) return row.agent_name || row.agent_id;
  if (row.assistant_id) {
    const assistant = assistants.find((a) => a.id === row.assistant_id);
    return `AI: ${assistant ? assistant.name : row.assistant_id}`;
  }
  return "–";
}

function say(box, text) {
  box.textContent = text;
  box.hidden = !text;
}

function failed(error) {
  return error.message === "signed out" ? "" : error.message;
}

function assistantOptions(select, workspace, chosen) {
  const mine = assistants.filter((a) => a.workspace === workspace);
  select.replaceChildren(
    ...(mine.length
      ? mine.map((a) => el("option", { value: a.id }, a.name))
      : [el("option", { value: "" }, "No assistant in this workspace")]),
  );
  if (chosen && mine.some((a) => a.id === chosen)) select.value = chosen;
}

// The route the row's or the form's controls ask for.
function chosenRoute(kind, assistant, previous) {
  if (kind === "voicemail") return { kind: "voicemail" };
  if (kind === "ai") return { kind: "ai", assistant_id: assistant };
  return previous && previous.kind === "agents" ? previous : HUMAN;
}

function numberRow(row) {
  const kind = row.route ? row.route.kind : "";
  const select = el("select", { "data-testid": "route-select", "aria-label": `Route of ${row.e164}` },
    el("option", { value: "agents" }, "Human"),
    el("option", { value: "ai" }, "AI"),
    el("option", { value: "voicemail" }, "Voicemail"));
  select.value = kind || "voicemail";
  const assistant = el("select", { "data-testid": "route-assistant", "aria-label": `Assistant for ${row.e164}` });
  assistantOptions(assistant, row.workspace, row.route && row.route.assistant_id);
  assistant.hidden = select.value !== "ai";
  select.addEventListener("change", () => {
    assistant.hidden = select.value !== "ai";
  });
  const save = el("button", { type: "button", "data-testid": "route-save" }, "Save");
  const error = el("p", { "data-testid": "route-error", class: "field-error", role: "alert", hidden: "" });
  const usable = !row.note && row.status !== "RELEASED";
  if (!usable) {
    select.disabled = true;
    save.disabled = true;
  }
  save.addEventListener("click", async () => {
    save.disabled = true;
    say(error, "");
    const params = new URLSearchParams({ workspace: row.workspace });
    try {
      const answer = await api(`/api/numbers/${encodeURIComponent(row.e164)}/route?${params}`, {
        method: "PUT",
        body: chosenRoute(select.value, assistant.value, row.route),
      });
      row.route = answer.route;
      tr.replaceWith(numberRow(row));
    } catch (failure) {
      say(error, failed(failure));
      save.disabled = false;
    }
  });
  const tr = el("tr", { "data-testid": "number-row", dataset: { e164: row.e164, workspace: row.workspace, provider: row.provider, status: row.status, route: kind } },
    el("td", { class: "number" }, el("strong", { text: formatNumber(row.e164) }), row.nickname ? el("br") : "", row.nickname ? el("span", { class: "muted", text: row.nickname }) : ""),
    el("td", { text: row.provider }),
    el("td", { text: row.workspace }),
    el("td", {}, el("span", { class: "status", text: label(row.status) })),
    el("td", { "data-testid": "number-holder", text: holder(row) }),
    el("td", { "data-testid": "number-route", text: routeText(row.route) }),
    el("td", {}, select, " ", assistant, " ", save, error));
  return tr;
}

function fillSelect(select, values, keepFirst) {
  const chosen = select.value;
  const first = keepFirst ? [...select.options].slice(0, 1) : [];
  select.replaceChildren(...first, ...values.map((v) => el("option", { value: v }, v)));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

function render() {
  const workspace = $("numbers-workspace").value;
  const provider = $("numbers-provider").value;
  const status = $("numbers-status").value;
  const shownRows = rows.filter((r) => (!workspace || r.workspace === workspace)
    && (!provider || r.provider === provider)
    && (!status || r.status === status));
  $("number-rows").replaceChildren(...shownRows.map(numberRow));
  document.querySelector('[data-empty="numbers"]').hidden = shownRows.length > 0;
}

// Every directory entry, and each live number no provider account holds.
async function load() {
  const [directory, live, found] = await Promise.all([
    api("/api/directory"),
    api("/api/numbers"),
    api("/api/assistants"),
  ]);
  assistants = found;
  const held = new Set(directory.map((d) => `${d.workspace} ${d.e164}`));
  rows = [
    ...directory,
    ...live.filter((n) => !held.has(`${n.workspace} ${n.e164}`))
      .map((n) => ({ e164: n.e164, workspace: n.workspace, provider: "–", status: "LIVE", route: n.route })),
  ].sort((a, b) => a.workspace.localeCompare(b.workspace) || a.e164.localeCompare(b.e164));
  const workspaces = [...new Set([...rows.map((r) => r.workspace), ...assistants.map((a) => a.workspace)])].sort();
  fillSelect($("numbers-workspace"), workspaces, true);
  fillSelect($("numbers-provider"), [...new Set(rows.map((r) => r.provider))].sort(), true);
  fillSelect($("migrate-workspace"), workspaces, false);
  fillSelect($("rollback-workspace"), workspaces, false);
  if ($("numbers-workspace").value) {
    $("migrate-workspace").value = $("numbers-workspace").value;
    $("rollback-workspace").value = $("numbers-workspace").value;
  }
  migrateAssistants();
}

function migrateAssistants() {
  assistantOptions($("migrate-assistant"), $("migrate-workspace").value, $("migrate-assistant").value);
  $("migrate-assistant").hidden = $("migrate-route").value !== "ai";
}

function planList(list, numbers, testid) {
  list.replaceChildren(
    ...numbers.map((n) =>
      el("li", { "data-testid": testid, dataset: { e164: n.e164 } },
        `${formatNumber(n.e164)} (${n.e164}): ${routeText(n.from)} → ${routeText(n.to)}`)),
  );
}

function resetMigrate() {
  migratePlan = null;
  $("migrate-confirmation").hidden = true;
  say($("migrate-error"), "");
}

function resetRollback() {
  rollbackPlan = null;
  $("rollback-confirmation").hidden = true;
  say($("rollback-error"), "");
}

async function previewMigrate(event) {
  event.preventDefault();
  resetMigrate();
  say($("migrate-result"), "");
  const percent = Number($("migrate-percent").value);
  if (!Number.isInteger(percent) || percent < 1 || percent > 100) {
    say($("migrate-error"), "The share must be a whole number of percent from 1 to 100.");
    return;
  }
  const request = {
    workspace: $("migrate-workspace").value,
    route: chosenRoute($("migrate-route").value, $("migrate-assistant").value, null),
    percent,
  };
  try {
    const plan = await api("/api/numbers/migrate", { method: "POST", body: { ...request, dry_run: true } });
    migratePlan = { request, plan };
    const moving = plan.would_move;
    $("migrate-summary").textContent = moving.length
      ? `${moving.length} ${moving.length === 1 ? "number" : "numbers"} of ${request.workspace} will move to ${routeText(plan.route)}:`
      : `${percent} % of ${request.workspace} is on ${routeText(plan.route)} already: nothing will move.`;
    planList($("migrate-plan"), moving.map((n) => ({ e164: n.e164, from: n.previous_route, to: plan.route })), "migrate-plan-item");
    $("migrate-confirm").hidden = moving.length === 0;
    $("migrate-confirmation").hidden = false;
  } catch (error) {
    say($("migrate-error"), failed(error));
  }
}

async function confirmMigrate() {
  if (!migratePlan) return;
  const { request, plan } = migratePlan;
  $("migrate-confirm").disabled = true;
  try {
    const result = await api("/api/numbers/migrate", { method: "POST", body: request });
    const moved = result.moved.map((m) => m.e164);
    const planned = plan.would_move.map((m) => m.e164);
    const same = moved.length === planned.length && moved.every((e) => planned.includes(e));
    resetMigrate();
    const resultBox = $("migrate-result");
    resultBox.dataset.moved = moved.join(" ");
    resultBox.dataset.id = result.id || "";
    say(resultBox, moved.length
      ? `Moved ${moved.length}: ${moved.join(", ")}${same ? "." : " — not the numbers previewed: the numbers changed meanwhile."}${result.id ? ` (migration ${result.id})` : ""}`
      : "Nothing had to move.");
    await load();
    if (current()) render();
  } catch (error) {
    say($("migrate-error"), failed(error));
  } finally {
    $("migrate-confirm").disabled = false;
  }
}

async function previewRollback(event) {
  event.preventDefault();
  resetRollback();
  say($("rollback-result"), "");
  const request = { workspace: $("rollback-workspace").value };
  try {
    const plan = await api("/api/numbers/rollback", { method: "POST", body: { ...request, dry_run: true } });
    rollbackPlan = { request: { ...request, id: plan.id }, plan };
    const live = new Map(rows.filter((r) => r.workspace === request.workspace).map((r) => [r.e164, r.route]));
    $("rollback-summary").textContent = `Migration ${plan.id}: ${plan.would_restore.length} ${plan.would_restore.length === 1 ? "number goes" : "numbers go"} back:`;
    planList($("rollback-plan"), plan.would_restore.map((n) => ({ e164: n.e164, from: live.get(n.e164), to: n.route })), "rollback-plan-item");
    $("rollback-confirmation").hidden = false;
  } catch (error) {
    say($("rollback-error"), failed(error));
  }
}

async function confirmRollback() {
  if (!rollbackPlan) return;
  $("rollback-confirm").disabled = true;
  try {
    const result = await api("/api/numbers/rollback", { method: "POST", body: rollbackPlan.request });
    resetRollback();
    const restored = result.restored.map((r) => r.e164);
    $("rollback-result").dataset.restored = restored.join(" ");
    say($("rollback-result"), `Rolled back migration ${result.id}: ${restored.join(", ")} restored.`);
    await load();
    if (current()) render();
  } catch (error) {
    say($("rollback-error"), failed(error));
  } finally {
    $("rollback-confirm").disabled = false;
  }
}

function wire() {
  for (const id of ["numbers-workspace", "numbers-provider", "numbers-status"]) $(id).addEventListener("change", render);
  $("migrate-workspace").addEventListener("change", () => {
    resetMigrate();
    migrateAssistants();
  });
  $("migrate-route").addEventListener("change", () => {
    resetMigrate();
    migrateAssistants();
  });
  for (const id of ["migrate-assistant", "migrate-percent"]) $(id).addEventListener("input", resetMigrate);
  $("rollback-workspace").addEventListener("change", resetRollback);
  $("migrate-form").addEventListener("submit", previewMigrate);
  $("migrate-confirm").addEventListener("click", confirmMigrate);
  $("migrate-cancel").addEventListener("click", resetMigrate);
  $("rollback-form").addEventListener("submit", previewRollback);
  $("rollback-confirm").addEventListener("click", confirmRollback);
  $("rollback-cancel").addEventListener("click", resetRollback);
}

// Shows the Numbers view; `isCurrent()` is false once another view was asked for.
export async function numbersView(client, isCurrent) {
  api = client;
  current = isCurrent;
  if (!wired) {
    wire();
    wired = true;
  }
  await load();
  if (!current()) return;
  render();
}
