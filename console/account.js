// The account's page: who is signed in, LLM spend against the cap and by day and model, API keys.
import { api } from "./api.js";
import { h, clear, toast } from "./ui.js";
import { spendHistorySection } from "./spend.js";

export async function accountPage(main, account) {
  const me = await api("GET", "/auth/me");
  const spend = me.spend || {};
  const used = Number(spend.spendUsedCents || 0);
  const cap = Number(spend.spendCapCents || 0);
  const meter = h("meter", { id: "spend", min: "0", max: String(Math.max(cap, 1)), value: String(used), "aria-label": "LLM spend against the cap" });
  const keys = h("tbody");
  const name = h("input", { id: "key-name", value: "console", maxlength: "100" });
  const shown = h("div", { id: "new-key" });
  async function showKeys() {
    try {
      const list = await api("GET", "/auth/tokens");
      clear(keys).append(...list.map((key) => h("tr", {},
        h("td", {}, key.name), h("td", { class: "mono" }, key.prefix || ""),
        h("td", {}, key.revokedAt ? "revoked" : key.expiresAt ? `until ${new Date(key.expiresAt).toLocaleDateString()}` : "no expiry"),
        h("td", {}, key.revokedAt ? "" : h("button", { type: "button", class: "danger", onclick: async () => {
          try { await api("DELETE", `/auth/tokens/${key.id}`); showKeys(); } catch (error) { toast(error.message, true); }
        } }, "Revoke")))));
    } catch (error) { toast(error.message, true); }
  }
  const form = h("form", { class: "row" }, h("label", { for: "key-name" }, "Name", name), h("button", { class: "primary", type: "submit" }, "Create API key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("POST", "/auth/tokens", { name: name.value });
      clear(shown).append(h("p", { class: "secret" }, "Shown once — copy it now: ", h("code", {}, made.token)));
      showKeys();
    } catch (error) { toast(error.message, true); }
  });
  clear(main).append(
    h("h1", {}, "Account"),
    h("section", { class: "card" },
      h("p", {}, `${me.email} · ${me.role} · up to ${me.limits.concurrentSandboxes} sandboxes at once`),
      h("h2", {}, "LLM proxy spend"),
      h("p", {}, meter, " ", h("span", { id: "spend-text" }, `${(used / 100).toFixed(4)} of ${(cap / 100).toFixed(2)} USD used`)),
      spendHistorySection()),
    h("section", { class: "card" }, h("h2", {}, "API keys"), form, shown, h("table", {}, keys)),
    vaultSection(),
    webhooksSection());
  showKeys();
}

/** The vault: names are listed, values are written and never read back. */
function vaultSection() {
  const list = h("tbody");
  const key = h("input", { id: "vault-key", required: true, pattern: "[A-Za-z_][A-Za-z0-9_]*", maxlength: "256" });
  const value = h("input", { id: "vault-value", type: "password", required: true, autocomplete: "off" });
  async function show() {
    try {
      const vault = await api("GET", "/vault/credentials");
      clear(list).append(...(vault.keys || []).map((name) => h("tr", {}, h("td", { class: "mono" }, name),
        h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${name}`, onclick: async () => {
          try { await api("DELETE", `/vault/credentials/${encodeURIComponent(name)}`); show(); } catch (error) { toast(error.message, true); }
        } }, "Delete")))));
    } catch (error) { toast(error.message, true); }
  }
  const form = h("form", { class: "row" }, h("label", { for: "vault-key" }, "Name", key), h("label", { for: "vault-value" }, "Value (write-only)", value),
    h("button", { type: "submit", class: "primary" }, "Save"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", "/vault/credentials", { key: key.value, value: value.value });
      value.value = "";
      show();
    } catch (error) { toast(error.message, true); }
  });
  show();
  return h("section", { class: "card" }, h("h2", {}, "Vault"), form, h("table", {}, list));
}

const events = ["created", "paused", "resumed", "killed", "timeout", "idle_killed", "error"];

/** Webhooks: the receiver's URL and events; the signing secret is shown once. */
function webhooksSection() {
  const list = h("tbody");
  const url = h("input", { id: "webhook-url", type: "url", required: true, placeholder: "https://example.com/hooks/omnirun" });
  const boxes = events.map((name) => h("input", { type: "checkbox", value: name, id: `event-${name}`, checked: true }));
  const secret = h("div");
  async function show() {
    try {
      const hooks = await api("GET", "/webhooks");
      clear(list).append(...hooks.map((hook) => h("tr", {}, h("td", { class: "mono" }, hook.url), h("td", {}, hook.events.join(", ")),
        h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
          try { await api("DELETE", `/webhooks/${hook.id}`); show(); } catch (error) { toast(error.message, true); }
        } }, "Delete")))));
    } catch (error) { toast(error.message, true); }
  }
  const form = h("form", {},
    h("div", { class: "row" }, h("label", { for: "webhook-url" }, "URL", url),
      ...boxes.map((box) => h("label", { for: box.id }, box.value, box)),
      h("button", { type: "submit", class: "primary" }, "Add webhook")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const made = await api("POST", "/webhooks", { url: url.value, events: boxes.filter((b) => b.checked).map((b) => b.value) });
      clear(secret).append(h("p", { class: "secret" }, "Signing secret, shown once: ", h("code", {}, made.secret)));
      show();
    } catch (error) { toast(error.message, true); }
  });
  show();
  return h("section", { class: "card" }, h("h2", {}, "Webhooks"), form, secret, h("table", {}, list));
}
