// The API of this server, called with the console's session (an HttpOnly cookie) and the
// session's CSRF token on every change.
export const session = { csrf: null, account: null };

/** Calls the API; JSON in and out. Throws an Error with the server's message on a 4xx/5xx. */
export async function api(method, path, body, options = {}) {
  const headers = {};
  if (session.csrf && method !== "GET") headers["X-OmniRun-CSRF"] = session.csrf;
  let payload;
  if (body instanceof Blob || body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload, credentials: "same-origin" });
  if (response.status === 401 && !options.quiet) {
    session.csrf = null;
    location.hash = "#/signin";
  }
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const error = await response.json();
      message = error.message || error.error || message;
    } catch {}
    const failure = new Error(message);
    failure.status = response.status;
    throw failure;
  }
  if (options.raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response.text();
}

