// The signed-in session of a page, shared by the sign-in page, the softphone, the
// supervisor console and a user's pages.
//
//   checkToken(token)         -> {ok:true, session} | {ok:false, status, message}
//                                (GET /api/session with the bearer token)
//   pageFor(session)          -> "/agent" | "/supervisor" | "/app" | null
//   saveToken(token), token(), clearToken()   (sessionStorage, this tab only)
//   requireSession(role)      -> {token, session}, or leaves for "/" (no or bad
//                                token) or the page of the token's role
//   signOut()                 -> clears the token and goes to "/"
//
// The token is never put in a page URL and never logged.

const KEY = "switchboard.token";

export function token() {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function saveToken(value) {
  sessionStorage.setItem(KEY, value);
}

export function clearToken() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // storage unavailable: nothing was stored
  }
}

export async function checkToken(value) {
  let response;
  try {
    response = await fetch("/api/session", {
      headers: { Authorization: `Bearer ${value}` },
      cache: "no-store",
    });
  } catch {
    return { ok: false, status: 0, message: "The engine cannot be reached. Check the connection and try again." };
  }
  if (response.status === 401 || response.status === 403) {
    return { ok: false, status: response.status, message: "This token is not valid. Check it and paste it again." };
  }
  if (!response.ok) {
    return { ok: false, status: response.status, message: `The engine could not check the token (HTTP ${response.status}).` };
  }
  let session;
  try {
    session = await response.json();
  } catch {
    return { ok: false, status: response.status, message: "The engine answered something unexpected." };
  }
  return { ok: true, session };
}

export function pageFor(session) {
  switch (session && session.role) {
    case "agent":
      return "/agent";
    case "admin":
      return "/supervisor";
    case "user":
      return "/app";
    default:
      return null;
  }
}

export async function requireSession(role) {
  const value = token();
  if (!value) {
    location.replace("/");
    return new Promise(() => {});
  }
  const checked = await checkToken(value);
  if (!checked.ok) {
    if (checked.status === 401 || checked.status === 403) {
      clearToken();
      location.replace("/");
      return new Promise(() => {});
    }
    throw new Error(checked.message);
  }
  if (checked.session.role !== role) {
    const page = pageFor(checked.session);
    location.replace(page || "/");
    return new Promise(() => {});
  }
  return { token: value, session: checked.session };
}

export function signOut() {
  clearToken();
  location.replace("/");
}
