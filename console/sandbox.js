// A sandbox's page: its terminal (the PTY API), files, exposures and metrics.
import { api } from "./api.js";
import { h, clear, toast, bytes, sparkline } from "./ui.js";

/** The live terminal, for whoever reads the screen (tests, assistive tools). */
export const terminalView = { term: null, text: () => "" };

function screenText(term) {
  const buffer = term.buffer && term.buffer.active ? term.buffer.active : term.buffer;
  if (!buffer || !buffer.getLine) return "";
  const lines = [];
  for (let y = 0; y < buffer.length; y++) {
    const line = buffer.getLine(y);
    if (line) lines.push(line.translateToString(true));
  }
  return lines.join("\n");
}

async function terminal(id, container) {
  if (!window.Terminal) {
    container.append(h("p", { class: "muted" }, "The terminal library is not installed on this server (scripts/console-vendor.sh)."));
    return () => {};
  }
  const term = new window.Terminal({ cols: 80, rows: 20, cursorBlink: true, scrollback: 2000 });
  term.open(container);
  // xterm.js puts its outer element in the Tab order too: a stop without a name where typing
  // goes nowhere. The keyboard's one stop is its input ("Terminal input").
  if (term.element) term.element.setAttribute("tabindex", "-1");
  // Tab and Shift+Tab belong to the shell (completion), so they cannot also leave the terminal:
  // Esc then Tab (or Shift+Tab) within 2 s moves the focus on instead (the Esc still reaches
  // the shell, as editors need it). The hint under the heading says so.
  let escapedAt = 0;
  term.attachCustomKeyEventHandler((event) => {
    if (event.type !== "keydown") return true;
    if (event.key === "Escape") { escapedAt = Date.now(); return true; }
    const leave = event.key === "Tab" && !event.ctrlKey && !event.altKey && !event.metaKey && Date.now() - escapedAt < 2000;
    escapedAt = 0;
    return !leave;
  });
  if (term.textarea) term.textarea.setAttribute("aria-describedby", "terminal-hint");
  // As many columns and rows as the panel holds (the fit add-on), told to the PTY.
  const fit = window.FitAddon ? new window.FitAddon.FitAddon() : null;
  if (fit) {
    term.loadAddon(fit);
    fit.fit();
  }
  terminalView.term = term;
  terminalView.text = () => screenText(term);
  window.omnirunTerminal = terminalView;
  const pty = await api("POST", `/sandboxes/${id}/pty`, { cols: term.cols, rows: term.rows });
  const resize = () => {
    if (!fit) return;
    fit.fit();
    api("POST", `/sandboxes/${id}/pty/${pty.pid}/resize`, { cols: term.cols, rows: term.rows }).catch(() => {});
  };
  window.addEventListener("resize", resize);
  let open = true;
  let queue = Promise.resolve();
  term.onData((data) => {
    // Keystrokes go out in order, one request after the other.
    queue = queue.then(() => api("POST", `/sandboxes/${id}/pty/${pty.pid}/input`, { data })).catch((error) => toast(error.message, true));
  });
  (async () => {
    while (open) {
      try {
        const read = await api("GET", `/sandboxes/${id}/pty/${pty.pid}/read`);
        if (read.data) term.write(read.data);
        await new Promise((resolve) => setTimeout(resolve, read.data ? 30 : 150));
      } catch (error) {
        if (open) term.write(`\r\n[terminal closed: ${error.message}]\r\n`);
        return;
      }
    }
  })();
  term.focus();
  return () => {
    open = false;
    window.removeEventListener("resize", resize);
    api("DELETE", `/sandboxes/${id}/pty/${pty.pid}`).catch(() => {});
    term.dispose();
  };
}

function filesPanel(id) {
  const path = h("input", { id: "files-path", value: "/home/user", "aria-label": "Folder" });
  const list = h("tbody");
  const upload = h("input", { id: "upload", type: "file", "aria-label": "File to upload" });
  async function show() {
    try {
      const entries = await api("GET", `/sandboxes/${id}/files/list?path=${encodeURIComponent(path.value)}`);
      clear(list).append(...entries.map((entry) => h("tr", {},
        h("td", {}, entry.is_dir
          ? h("button", { type: "button", onclick: () => { path.value = entry.path; show(); } }, `${entry.name}/`)
          : h("a", { href: `/sandboxes/${id}/files/download?path=${encodeURIComponent(entry.path)}`, download: entry.name }, entry.name)),
        h("td", {}, entry.is_dir ? "" : bytes(entry.size)),
        h("td", {}, h("button", { type: "button", class: "danger", "aria-label": `Delete ${entry.name}`, onclick: async () => {
          try {
            await api("DELETE", `/sandboxes/${id}/files?path=${encodeURIComponent(entry.path)}`);
            show();
          } catch (error) { toast(error.message, true); }
        } }, "Delete")))));
      if (!entries.length) list.append(h("tr", {}, h("td", { colspan: "3", class: "muted" }, "Empty folder.")));
    } catch (error) { toast(error.message, true); }
  }
  upload.addEventListener("change", async () => {
    const file = upload.files[0];
    if (!file) return;
    const target = `${path.value.replace(/\/$/, "")}/${file.name}`;
    try {
      await api("PUT", `/sandboxes/${id}/files/upload?path=${encodeURIComponent(target)}`, file);
      toast(`Uploaded ${file.name} (${bytes(file.size)})`);
      upload.value = "";
      show();
    } catch (error) { toast(error.message, true); }
  });
  show();
  return h("section", { class: "card", "aria-labelledby": "files-title" },
    h("h2", { id: "files-title" }, "Files"),
    h("div", { class: "row" }, path, h("button", { type: "button", onclick: show }, "Open"), h("label", { for: "upload" }, "Upload", upload)),
    h("table", {}, list));
}

function exposuresPanel(id) {
  const port = h("input", { id: "expose-port", type: "number", min: "1", max: "65535", value: "8000" });
  const visibility = h("select", { id: "expose-visibility" }, h("option", { value: "private" }, "private"), h("option", { value: "public" }, "public"));
  const list = h("tbody");
  async function show() {
    try {
      const exposures = await api("GET", `/sandboxes/${id}/exposures`);
      clear(list).append(...exposures.filter((e) => e.status !== "revoked").map((e) => {
        const url = e.accessUrl || e.url;
        return h("tr", { "data-exposure": e.id },
          h("td", {}, String(e.port)), h("td", {}, e.visibility), h("td", {}, e.status),
          h("td", {}, h("a", { href: url, target: "_blank", rel: "noopener noreferrer", class: "mono exposure-link" }, e.url)),
          h("td", {}, h("div", { class: "actions" },
            h("button", { type: "button", onclick: () => navigator.clipboard && navigator.clipboard.writeText(url).then(() => toast("Copied")) }, "Copy"),
            h("button", { type: "button", class: "danger", onclick: async () => {
              try { await api("DELETE", `/sandboxes/${id}/exposures/${e.id}`); show(); } catch (error) { toast(error.message, true); }
            } }, "Revoke"))));
      }));
    } catch (error) { toast(error.message, true); }
  }
  const form = h("form", { class: "row" },
    h("label", { for: "expose-port" }, "Port", port),
    h("label", { for: "expose-visibility" }, "Visibility", visibility),
    h("button", { type: "submit", class: "primary", id: "expose" }, "Expose"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api("POST", `/sandboxes/${id}/exposures`, { port: Number(port.value), visibility: visibility.value });
      show();
    } catch (error) { toast(error.message, true); }
  });
  show();
  return h("section", { class: "card", "aria-labelledby": "exposures-title" }, h("h2", { id: "exposures-title" }, "Exposures"), form, h("table", {}, list));
}

function metricsPanel(id) {
  const box = h("div", { class: "row" });
  async function show() {
    try {
      const samples = (await api("GET", `/sandboxes/${id}/metrics?limit=120`)).reverse();
      if (!samples.length) { clear(box).append(h("p", { class: "muted" }, "No samples yet (every few seconds).")); return; }
      clear(box).append(
        h("figure", {}, sparkline(samples.map((s) => s.cpu_used_pct), "CPU use over time"), h("figcaption", {}, `CPU ${samples.at(-1).cpu_used_pct}%`)),
        h("figure", {}, sparkline(samples.map((s) => s.mem_used), "Memory use over time"), h("figcaption", {}, `Memory ${bytes(samples.at(-1).mem_used)}`)));
    } catch (error) { clear(box).append(h("p", { class: "muted" }, error.message)); }
  }
  return { show, panel: h("section", { class: "card", "aria-labelledby": "metrics-title" }, h("h2", { id: "metrics-title" }, "Metrics"), box) };
}

/** The sandbox's commands (`GET /sandboxes/{id}/commands`: those started through the API, not
 * the terminal's shell), the running ones first, each running one with a Kill button. */
function commandsPanel(id) {
  const list = h("tbody", { id: "commands" });
  async function show() {
    try {
      const commands = await api("GET", `/sandboxes/${id}/commands`);
      commands.sort((a, b) => (b.running - a.running) || String(b.started_at).localeCompare(String(a.started_at)));
      // A Kill button that has the focus keeps it when its row is drawn again.
      const focusedPid = list.contains(document.activeElement) ? document.activeElement.dataset.pid : null;
      clear(list).append(...commands.slice(0, 20).map((c) => h("tr", { "data-pid": String(c.pid) },
        h("td", { class: "mono" }, String(c.pid)),
        h("td", { class: "mono command" }, c.command),
        h("td", {}, c.started_at ? new Date(c.started_at).toLocaleTimeString() : ""),
        h("td", {}, c.running ? h("span", { class: "state running" }, "running") : `exited ${c.exit_code ?? ""}`),
        h("td", {}, c.running ? h("button", { type: "button", class: "danger", "data-pid": String(c.pid),
          "aria-label": `Kill ${c.command.slice(0, 60)} (pid ${c.pid})`, onclick: async () => {
            try { await api("DELETE", `/sandboxes/${id}/commands/${c.pid}`); show(); } catch (error) { toast(error.message, true); }
          } }, "Kill") : ""))));
      if (!commands.length) list.append(h("tr", {}, h("td", { colspan: "5", class: "muted" }, "No commands (started through the API) yet.")));
      if (focusedPid && !list.contains(document.activeElement)) {
        const again = list.querySelector(`button[data-pid="${focusedPid}"]`);
        if (again) again.focus({ preventScroll: true });
      }
    } catch (error) { clear(list).append(h("tr", {}, h("td", { colspan: "5", class: "muted" }, error.message))); }
  }
  return { show, panel: h("section", { class: "card", "aria-labelledby": "commands-title" }, h("h2", { id: "commands-title" }, "Commands"),
    h("table", {}, h("thead", {}, h("tr", {}, ...["PID", "Command", "Started", "State"].map((t) => h("th", {}, t)),
      h("th", {}, h("span", { class: "visually-hidden" }, "Actions")))), list)) };
}

export async function sandboxPage(main, id) {
  const info = await api("GET", `/sandboxes/${id}`);
  const screen = h("div", { id: "terminal", "aria-label": "Terminal" });
  const metrics = metricsPanel(id);
  const commands = commandsPanel(id);
  clear(main).append(
    h("h1", {}, "Sandbox ", h("span", { class: "mono" }, info.sandboxID), " ", h("span", { class: `state ${info.state}` }, info.state)),
    h("p", { class: "muted" }, `${info.templateID} · ${info.cpuCount} vCPU · ${info.memoryMB} MiB` + (info.node ? ` · node ${info.node}` : "")),
    h("div", { class: "grid" },
      h("section", { class: "card", "aria-labelledby": "terminal-title" }, h("h2", { id: "terminal-title" }, "Terminal"), screen,
        h("p", { class: "muted hint", id: "terminal-hint" }, "Tab completes in the shell; Esc then Tab moves on to the next control.")),
      h("div", {}, metrics.panel, exposuresPanel(id))),
    commands.panel,
    filesPanel(id));
  // The metrics and the commands are read again every 5 s while this page is shown (one loop).
  const heading = main.querySelector("h1");
  let timer = null;
  const refresh = async () => {
    if (!main.contains(heading)) return;
    await Promise.all([metrics.show(), commands.show()]);
    if (main.contains(heading)) timer = setTimeout(refresh, 5000);
  };
  refresh();
  window.addEventListener("hashchange", () => clearTimeout(timer), { once: true });
  if (info.templateID === "desktop" && info.state === "running") {
    // The desktop's noVNC (port 6080) through a private exposure, opened in a new tab.
    main.querySelector("h1").after(h("p", {}, h("button", { type: "button", id: "live-view", onclick: async () => {
      try {
        const exposure = await api("POST", `/sandboxes/${id}/exposures`, { port: 6080, visibility: "private", openPath: "/vnc.html?autoconnect=1&resize=scale" });
        window.open(exposure.accessUrl, "_blank", "noopener");
      } catch (error) { toast(error.message, true); }
    } }, "Open the desktop's live view")));
  }
  if (info.state !== "running") {
    screen.append(h("p", { class: "muted" }, "Resume the sandbox to use its terminal."));
    return;
  }
  const close = await terminal(id, screen);
  window.addEventListener("hashchange", close, { once: true });
}
