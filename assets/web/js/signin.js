// The sign-in page: paste a token, GET /api/session, keep the token in
// sessionStorage and open the page of its role. A refused token stores nothing.
import { checkToken, clearToken, pageFor, saveToken } from "./session.js";

function start() {
  const form = document.getElementById("signin-form");
  const input = document.querySelector('[data-testid="token"]');
  const button = document.querySelector('[data-testid="sign-in"]');
  const error = document.querySelector('[data-testid="signin-error"]');

  const fail = (message) => {
    clearToken();
    error.textContent = message;
    error.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.focus();
    input.select();
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    error.hidden = true;
    input.removeAttribute("aria-invalid");
    if (!value) {
      fail("Paste a token first.");
      return;
    }
    button.disabled = true;
    try {
      const checked = await checkToken(value);
      if (!checked.ok) {
        fail(checked.message);
        return;
      }
      const page = pageFor(checked.session);
      if (!page) {
        fail("This token has no page here. Use an agent token, a user's API key or the admin token.");
        return;
      }
      saveToken(value);
      input.value = "";
      location.assign(page);
    } finally {
      button.disabled = false;
    }
  });
  input.focus();
}

start();
