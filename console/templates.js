// Templates: the built-in and custom ones, and a build from a Dockerfile (and a folder as its
// context, packed into a tar in the page) with the build's log streaming in.
import { api } from "./api.js";
import { h, clear, toast } from "./ui.js";
import { tarOf } from "./tar.js";

export async function templatesPage(main) {
  const list = h("tbody");
  const name = h("input", { id: "template-name", required: true, pattern: "[a-z0-9][a-z0-9._-]*", maxlength: "64" });
  const dockerfile = h("textarea", { id: "dockerfile", rows: "8", cols: "60", required: true }, "FROM playground\nRUN echo ready > /etc/ready\n");
  const folder = h("input", { id: "context", type: "file", webkitdirectory: true, multiple: true });
  const log = h("pre", { id: "build-log", class: "mono", "aria-live": "polite" });
  async function show() {
    try {
      const templates = await api("GET", "/templates");
      clear(list).append(...templates.map((t) => h("tr", {},
        h("td", {}, t.templateID), h("td", {}, t.builtIn ? "built-in" : "custom"), h("td", {}, t.status || ""),
        h("td", {}, `${t.cpuCount} vCPU · ${t.memoryMB} MiB`), h("td", { class: "muted" }, t.description || ""),
        h("td", {}, t.builtIn ? "" : h("button", { type: "button", class: "danger", onclick: async () => {
          try { await api("DELETE", `/templates/${encodeURIComponent(t.templateID)}`); show(); } catch (error) { toast(error.message, true); }
        } }, "Delete")))));
    } catch (error) { toast(error.message, true); }
  }
  const form = h("form", { "aria-label": "Build a template" },
    h("div", { class: "row" }, h("label", { for: "template-name" }, "Name", name), h("label", { for: "context" }, "Folder (build context, optional)", folder)),
    h("label", { for: "dockerfile" }, "Dockerfile", dockerfile),
    h("button", { type: "submit", class: "primary", id: "build" }, "Build"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = new FormData();
    body.append("dockerfile", dockerfile.value);
    body.append("settings", JSON.stringify({ name: name.value }));
    if (folder.files.length) body.append("context", new Blob([await tarOf(folder.files)]), "context.tar");
    clear(log);
    try {
      const started = await api("POST", "/templates", body);
      const stream = new EventSource(`/templates/${encodeURIComponent(name.value)}/builds/${started.buildID}`);
      stream.onmessage = (message) => {
        const item = JSON.parse(message.data);
        if (item.line) log.append(`${item.line}\n`);
        if (item.type === "end") {
          log.append(`build ${item.status}${item.error ? `: ${item.error}` : ""}\n`);
          stream.close();
          show();
        }
      };
      stream.onerror = () => stream.close();
    } catch (error) { toast(error.message, true); }
  });
  clear(main).append(
    h("h1", {}, "Templates"),
    h("table", { class: "wide" }, h("thead", {}, h("tr", {}, ...["Template", "Kind", "Status", "Resources", "Description", ""].map((t) => h("th", {}, t)))), list),
    h("section", { class: "card" }, h("h2", {}, "Build from a Dockerfile"), form, log));
  show();
}
