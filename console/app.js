// The OmniRun web console: plain ES modules over the REST API of this server. The session is
// an HttpOnly cookie; every change carries the session's CSRF token (X-OmniRun-CSRF).
// Everything a sandbox or a user wrote (file names, metadata, output) is put in the page as
// text, never as HTML.
import { api, session } from "./api.js";
import { h, clear, toast, age } from "./ui.js";
import { sandboxPage } from "./sandbox.js";
import { accountPage } from "./account.js";
import { templatesPage } from "./templates.js";
import { playgroundPage } from "./playground.js";

const main = document.getElementById("main");

function signInPage() {
  document.getElementById("nav").hidden = true;
  const email = h("input", { type: "email", id: "email", required: true, autocomplete: "email" });
  const code = h("input", { id: "code", inputmode: "numeric", autocomplete: "one-time-code", required: true });
  const codeForm = h("form", { class: "row", hidden: true },
    h("label", { for: "code" }, "Code from the email", code),
    h("button", { class: "primary", type: "submit", id: "sign-in" }, "Sign in"));
  const emailForm = h("form", { class: "row" },
    h("label", { for: "email" }, "Email", email),
    h("button", { class: "primary", type: "submit", id: "send-code" }, "Email me a code"));
  emailForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/auth/magic-link/request", { email: email.value }, { quiet: true });
      codeForm.hidden = false;
      code.focus();
      toast(`A code was sent to ${email.value}.`);
    } catch (error) { toast(error.message, true); }
  });
  codeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const signed = await api("POST", "/console/session", { email: email.value, code: code.value.trim() }, { quiet: true });
      session.csrf = signed.csrf;
      session.account = signed.account;
      location.hash = "#/sandboxes";
    } catch (error) { toast(error.message, true); }
  });
  const token = new URLSearchParams(location.hash.split("?")[1] || "").get("token");
  if (token) {
    // The token works once: it leaves the address (and the history) before it is used.
    history.replaceState(null, "", "#/signin");
    api("POST", "/console/session", { token }, { quiet: true }).then((signed) => {
      session.csrf = signed.csrf;
      session.account = signed.account;
      location.hash = "#/sandboxes";
    }, (error) => toast(error.message, true));
  }
  clear(main).append(
    h("h1", {}, "Sign in to OmniRun"),
    h("div", { class: "card" }, emailForm, codeForm),
    h("p", { class: "muted" }, "The code (or the link) in the email signs this browser in; signing out ends the session."));
  email.focus();
}

/** A template as the picker names it: its name and, where the API gives them, its resources. */
function templateLabel(t) {
  const resources = [];
  if (Number.isFinite(t.cpuCount) && t.cpuCount > 0) resources.push(`${t.cpuCount} vCPU`);
  if (Number.isFinite(t.memoryMB) && t.memoryMB > 0) resources.push(`${t.memoryMB} MiB`);
  return resources.length ? `${t.templateID} (${resources.join(", ")})` : t.templateID;
}

async function sandboxesPage() {
  const templates = await api("GET", "/templates").catch(() => []);
  const template = h("select", { id: "template" },
    ...templates.filter((t) => t.status === "ready").map((t) => h("option", { value: t.templateID }, templateLabel(t))));
  const timeout = h("input", { id: "timeout", type: "number", min: "10", max: "86400", value: "900" });
  const internet = h("input", { id: "internet", type: "checkbox" });
  const create = h("form", { class: "row", "aria-label": "New sandbox" },
    h("label", { for: "template" }, "Template", template),
    h("label", { for: "timeout" }, "Timeout (s)", timeout),
    h("label", { for: "internet" }, "Internet", internet),
    h("button", { class: "primary", type: "submit", id: "create" }, "Create sandbox"));
  const body = h("tbody");
  const table = h("table", { class: "wide" },
    h("thead", {}, h("tr", {}, ...["Sandbox", "Template", "State", "Age", "Expires"].map((t) => h("th", {}, t)),
      h("th", {}, h("span", { class: "visually-hidden" }, "Actions")))), body);
  const history = h("tbody");
  create.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = create.querySelector("button");
    button.disabled = true;
    try {
      const made = await api("POST", "/sandboxes", {
        template: template.value, timeout: Number(timeout.value), internet: internet.checked,
      });
      location.hash = `#/sandbox/${made.sandboxID}`;
    } catch (error) {
      toast(error.message, true);
      // A disabled button loses the focus: give it back, so the keyboard is where it was.
      button.disabled = false;
      button.focus();
    }
  });
  async function act(id, what) {
    try {
      if (what === "kill") await api("DELETE", `/sandboxes/${id}`);
      else if (what === "fork") await api("POST", `/sandboxes/${id}/fork`, { count: 1 });
      else await api("POST", `/sandboxes/${id}/${what}`, {});
      refresh();
    } catch (error) { toast(error.message, true); }
  }
  // One refresh loop per page: an action (Pause, Resume, Fork, Kill) redraws the list at once
  // and puts the loop's next turn 3 s after that, never a second loop beside the first.
  let timer = null;
  async function refresh() {
    clearTimeout(timer);
    timer = null;
    if (!document.body.contains(table)) return;
    try {
      const list = await api("GET", "/sandboxes");
      // The rows are drawn again every 3 s: a control that has the focus gets it back in its
      // new row (same sandbox, same place), or the keyboard would start over at the top.
      const focused = body.contains(document.activeElement) ? document.activeElement : null;
      const row = focused && focused.closest("tr[data-id]");
      const kept = row && { id: row.dataset.id, index: [...row.querySelectorAll("a, button")].indexOf(focused) };
      const action = (s, what, label, extra = {}) =>
        h("button", { type: "button", "data-action": what, "aria-label": `${label} ${s.sandboxID}`, onclick: () => act(s.sandboxID, what), ...extra }, label);
      clear(body).append(...list.map((s) => h("tr", { "data-id": s.sandboxID },
        h("td", {}, h("a", { href: `#/sandbox/${s.sandboxID}`, class: "mono" }, s.sandboxID)),
        h("td", {}, s.templateID),
        h("td", {}, h("span", { class: `state ${s.state}` }, s.state)),
        h("td", {}, age(s.startedAt)),
        h("td", {}, s.endAt ? new Date(s.endAt).toLocaleTimeString() : "—"),
        h("td", {}, h("div", { class: "actions" },
          s.state === "paused" ? action(s, "resume", "Resume") : action(s, "pause", "Pause"),
          action(s, "fork", "Fork"),
          action(s, "kill", "Kill", { class: "danger" }))))));
      if (!list.length) body.append(h("tr", {}, h("td", { colspan: "6", class: "muted" }, "No sandboxes are running.")));
      if (kept && !body.contains(document.activeElement)) {
        const again = [...body.querySelectorAll("tr[data-id]")].find((tr) => tr.dataset.id === kept.id);
        const controls = again ? [...again.querySelectorAll("a, button")] : [];
        (controls[kept.index] || controls[0] || main).focus({ preventScroll: true });
      }
      const ended = await api("GET", "/sandboxes/history");
      clear(history).append(...ended.slice(0, 20).map((s) => h("tr", {},
        h("td", { class: "mono" }, s.sandboxID), h("td", {}, s.templateID || ""), h("td", {}, s.endReason || s.state || ""),
        h("td", {}, s.endedAt ? new Date(s.endedAt).toLocaleString() : ""))));
    } catch (error) { toast(error.message, true); }
    // Two turns may have been drawing at once (an action's and the loop's): the later one
    // leaves the only timer.
    clearTimeout(timer);
    if (document.body.contains(table)) timer = setTimeout(refresh, 3000);
  }
  clear(main).append(
    h("h1", {}, "Sandboxes"),
    h("div", { class: "card" }, create),
    table,
    h("h2", {}, "History"),
    h("table", { class: "wide" }, h("thead", {}, h("tr", {}, ...["Sandbox", "Template", "Ended", "When"].map((t) => h("th", {}, t)))), history));
  refresh();
}

async function route() {
  const [path] = location.hash.slice(1).split("?");
  if (!session.csrf && path !== "/signin") {
    try {
      const current = await api("GET", "/console/session", undefined, { quiet: true });
      session.csrf = current.csrf;
      session.account = current.account;
    } catch {
      location.hash = "#/signin";
      return;
    }
  }
  if (path === "/signin") return signInPage();
  document.getElementById("nav").hidden = false;
  document.getElementById("who").textContent = session.account ? session.account.email : "";
  const parts = path.split("/").filter(Boolean);
  try {
    if (parts[0] === "sandbox" && parts[1]) await sandboxPage(main, parts[1]);
    else if (parts[0] === "account") await accountPage(main, session.account);
    else if (parts[0] === "templates") await templatesPage(main);
    else if (parts[0] === "playground") playgroundPage(main);
    else await sandboxesPage();
  } catch (error) {
    toast(error.message, true);
  }
  // The control that had the focus (the sign-in form, a button of the last page) may be gone
  // with the page it was on: the next Tab then starts at this page's content, not the top.
  const active = document.activeElement;
  if (!active || active === document.body) main.focus({ preventScroll: true });
}

document.getElementById("signout").addEventListener("click", async () => {
  try { await api("DELETE", "/console/session"); } catch {}
  session.csrf = null;
  session.account = null;
  location.hash = "#/signin";
});
window.addEventListener("hashchange", route);
route();
