// What the REST pages (/app, /app/admin) share: the API called with the page's
// token, a small element builder and the formats the pages show.
//
//   const api = restClient(token);      api(path, {method, body}) -> JSON
//     a non-2xx answer throws an Error with .status and .body (the engine's
//     {"code","message","field"?}); a 401 signs the page out first.
//   el(tag, {attr: value, dataset: {…}, text}, ...children)
//   money(usd) "$1.57"   when(rfc3339) local date and time   label("no_answer") "no answer"
//   showFieldError(scope, field, message, {prefix, fallback})  a refusal at its field
//   clearFieldErrors(scope, only, prefix)                      hides them (or one's)
import { signOut } from "./session.js";

export function restClient(token) {
  return async function api(path, { method = "GET", body } = {}) {
    const headers = { Authorization: `Bearer ${token}` };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
    if (response.status === 401) {
      signOut();
      throw new Error("signed out");
    }
    let answer = null;
    try {
      answer = await response.json();
    } catch {
      answer = null;
    }
    if (!response.ok) {
      const error = new Error((answer && answer.message) || `HTTP ${response.status}`);
      error.status = response.status;
      error.body = answer || {};
      throw error;
    }
    return answer;
  };
}

export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

export const money = (usd) => (typeof usd === "number" ? `$${usd.toFixed(2)}` : "–");
export const when = (rfc3339) => (rfc3339 ? new Date(rfc3339).toLocaleString() : "–");
export const label = (status) => String(status || "").replaceAll("_", " ");

// A refusal next to the field it names: the box `[data-testid="<prefix><field>"]`
// inside `scope`, for the field's first segment (`attestation.not_dnc` shows at
// `attestation`, `tools[0].url` at `tools`), else the scope's `fallback` box
// (`<prefix>form`); the field's control is marked aria-invalid. Answers that
// first segment.
export function showFieldError(scope, field, message, { prefix = "error-", fallback = `${prefix}form` } = {}) {
  const top = String(field || "").split(/[.[]/)[0];
  const box = (top && scope.querySelector(`[data-testid="${prefix}${CSS.escape(top)}"]`))
    || scope.querySelector(`[data-testid="${fallback}"]`);
  box.textContent = message;
  box.hidden = false;
  const control = top
    && scope.querySelector(`[data-field="${CSS.escape(top)}"] :is(input, select, textarea)`);
  if (control) control.setAttribute("aria-invalid", "true");
  return top;
}

// Hides the refusals shown in `scope` (only the field `only`'s, when named).
export function clearFieldErrors(scope, only, prefix = "error-") {
  for (const box of scope.querySelectorAll(".field-error")) {
    if (only && box.dataset.testid !== `${prefix}${only}`) continue;
    box.hidden = true;
    box.textContent = "";
  }
  for (const control of scope.querySelectorAll("[aria-invalid]")) {
    if (!only || control.closest(`[data-field="${CSS.escape(only)}"]`)) {
      control.removeAttribute("aria-invalid");
    }
  }
}

// The views of a one-page app. `sections` are the ids of its views' sections and
// `route` shows the view the current path names. Links marked `data-nav`, and
// Back and Forward, move between views without a reload.
//   const nav = pageViews(["dashboard", "calls"], route);
//   nav.show("calls", "nav-calls")   that section only; that nav link current
//   nav.go("/app/calls?page=2")      a new history entry, then route()
export function pageViews(sections, route) {
  const go = (url) => {
    history.pushState(null, "", url);
    route();
  };
  document.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-nav]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    go(link.getAttribute("href"));
  });
  window.addEventListener("popstate", () => route());
  const show = (section, nav) => {
    for (const id of sections) document.getElementById(id).hidden = id !== section;
    for (const link of document.querySelectorAll("nav a")) {
      if (link.dataset.testid === nav) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  };
  return { show, go };
}
