// The admin's Assistants view (`/app/admin/assistants`): a card per assistant and
// per agent with the number it holds (national form, with a Copy button) or "No
// phone assigned" with "Assign a number": an agent gets the first AVAILABLE pool
// number of its workspace (`POST /api/directory/assign`), an assistant one the
// engine picks (`POST /api/assistants/{id}/number`); and the
// wizard that creates an assistant step by step (who, instructions, voice and
// greeting, tools, where callers go on failure) and gives it a number from the
// pool (`POST /api/assistants` with `"assign_number": true`). The engine's
// refusals show next to the field they name; its warnings (no number left, a
// provider refusal) under the wizard.
import { formatNumber } from "./phone.js";
import { clearFieldErrors, el, showFieldError } from "./rest.js";

const VOICES = ["alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar"];
const TOOLS = [
  ["transfer_to_human", "Hand the caller to a person"],
  ["end_call", "End the call"],
  ["log_event", "Log an event"],
];
const $ = (id) => document.getElementById(id);

function numberLine(number) {
  if (!number) return el("p", { "data-testid": "no-phone", class: "muted" }, "No phone assigned");
  const copy = el("button", { type: "button", "data-testid": "copy-number", "data-e164": number.e164 }, "Copy");
  copy.addEventListener("click", () => {
    const done = () => { copy.textContent = "Copied"; };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(number.e164).then(done, () => { copy.textContent = number.e164; });
    } else {
      copy.textContent = number.e164;
    }
  });
  return el("p", { "data-testid": "phone" }, el("span", { "data-testid": "phone-national" }, number.national || number.e164), " ", copy);
}

function card(kind, item, number, extra) {
  return el("li", { class: "card", "data-testid": `${kind}-card`, dataset: { [`${kind}Id`]: item.id, number: number ? number.e164 : "" } },
    el("h3", { text: item.name }),
    el("p", { class: "muted", text: item.workspace }),
    numberLine(number),
    ...(extra ? [extra] : []));
}

function nationalOf(entry) {
  // The directory's entry has no national form: the number pretty-printed.
  return { e164: entry.e164, national: formatNumber(entry.e164) };
}

async function render(api, current) {
  const [assistants, agents, directory] = await Promise.all([
    api("/api/assistants"),
    api("/api/agents"),
    api("/api/directory"),
  ]);
  if (!current()) return;
  const held = new Map();
  for (const entry of directory) {
    if (entry.status === "ASSIGNED" && entry.agent_id && !held.has(entry.agent_id)) held.set(entry.agent_id, nationalOf(entry));
  }
  const available = (workspace) => directory.find((entry) => entry.status === "AVAILABLE" && entry.workspace === workspace);
  // "Assign a number" on a card without one: `assign` asks the engine, then the
  // cards are drawn again; a refusal stays on the card.
  const assignControl = (workspace, assign) => {
    const button = el("button", { type: "button", "data-testid": "assign-number" }, "Assign a number");
    const free = available(workspace);
    button.disabled = !free;
    if (!free) button.title = `No AVAILABLE number in ${workspace}`;
    const error = el("p", { class: "field-error", "data-testid": "assign-error", hidden: "" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await assign(free);
        await render(api, current);
      } catch (failure) {
        error.textContent = failure.message;
        error.hidden = false;
        button.disabled = false;
      }
    });
    return el("div", {}, button, error);
  };
  $("assistant-cards").replaceChildren(...assistants.map((assistant) => (assistant.number
    ? card("assistant", assistant, assistant.number)
    : card("assistant", assistant, null, assignControl(assistant.workspace, () =>
      api(`/api/assistants/${encodeURIComponent(assistant.id)}/number`, { method: "POST" }))))));
  $("agent-cards").replaceChildren(...agents.map((agent) => {
    const number = held.get(agent.id);
    if (number) return card("agent", agent, number);
    return card("agent", agent, null, assignControl(agent.workspace, (free) =>
      api("/api/directory/assign", { method: "POST", body: { e164: free.e164, workspace: agent.workspace, agent_id: agent.id } })));
  }));
  document.querySelector('[data-empty="assistants"]').hidden = assistants.length > 0;
}

// ---- the wizard ------------------------------------------------------------------

let step = 0;

function showStep(next) {
  const steps = [...document.querySelectorAll("#wizard [data-step]")];
  step = Math.max(0, Math.min(steps.length - 1, next));
  steps.forEach((section, index) => { section.hidden = index !== step; });
  $("wizard-back").disabled = step === 0;
  $("wizard-next").hidden = step === steps.length - 1;
  $("wizard-create").hidden = step !== steps.length - 1;
  $("wizard").dataset.step = String(step + 1);
}

function wizardBody() {
  const text = (id) => $(id).value.trim();
  const body = {
    name: text("wizard-name"),
    workspace: text("wizard-workspace"),
    instructions: text("wizard-instructions"),
    voice: $("wizard-voice").value,
    model: text("wizard-model"),
    tools: TOOLS.filter(([type]) => $(`wizard-tool-${type}`).checked).map(([type]) => ({ type })),
    on_failure: $("wizard-failure").value === "voicemail" ? { kind: "voicemail" } : { kind: "agents", agent_ids: [] },
    assign_number: $("wizard-assign").checked,
  };
  if (text("wizard-greeting")) body.greeting = text("wizard-greeting");
  return body;
}

// The step holding a field, so a refusal opens it.
const FIELD_STEP = { name: 0, workspace: 0, instructions: 1, voice: 2, model: 2, greeting: 2, tools: 3, on_failure: 4 };

async function create(api, current) {
  clearFieldErrors($("wizard"));
  $("wizard-create").disabled = true;
  try {
    const made = await api("/api/assistants", { method: "POST", body: wizardBody() });
    const warnings = made.warnings || [];
    $("wizard-result").textContent = made.number
      ? `${made.name} is ready on ${made.number.national || made.number.e164}.`
      : `${made.name} is ready, with no phone: ${warnings.join("; ") || "none asked for"}.`;
    $("wizard-result").dataset.assistantId = made.id;
    $("wizard-result").hidden = false;
    $("wizard").reset();
    showStep(0);
    await render(api, current);
  } catch (failure) {
    const field = showFieldError($("wizard"), failure.body && failure.body.field, failure.message, {
      prefix: "error-wizard-",
      fallback: "wizard-error",
    });
    if (field in FIELD_STEP) showStep(FIELD_STEP[field]);
  } finally {
    $("wizard-create").disabled = false;
  }
}

let bound = false;

export async function assistantsView(api, current) {
  if (!bound) {
    bound = true;
    $("wizard-voice").replaceChildren(...VOICES.map((voice) => el("option", { value: voice, text: voice })));
    $("wizard-tools").replaceChildren(...TOOLS.map(([type, text]) =>
      el("label", { class: "box" }, el("input", { type: "checkbox", id: `wizard-tool-${type}`, "data-testid": `wizard-tool-${type}` }), ` ${text}`)));
    $("wizard-back").addEventListener("click", () => showStep(step - 1));
    $("wizard-next").addEventListener("click", () => showStep(step + 1));
    $("wizard").addEventListener("submit", (event) => {
      event.preventDefault();
      // Enter in a field moves on; only the last step creates.
      if ($("wizard-create").hidden) showStep(step + 1);
      else create(api, current);
    });
  }
  showStep(step);
  await render(api, current);
}
