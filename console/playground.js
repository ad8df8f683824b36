// The playground: the product docs' "Try it" snippets, each editable and run in a fresh
// `playground` sandbox (no internet) through POST /sandboxes/{id}/code; stdout, stderr and the
// exit code are shown as text, and the sandbox is killed after the run unless it is kept.
import { api } from "./api.js";
import { h, clear, toast } from "./ui.js";

/** The snippets, after the docs' sections that end with "Try it" or "Run in playground". */
export const snippets = [
  {
    id: "python-sandbox", title: "Python sandbox", source: "Templates — Try it: Python Sandbox", language: "python",
    code: `import platform, sys

print(f"Python {sys.version.split()[0]} on {platform.machine()}")
squares = sum(i * i for i in range(1_000_000))
print("sum of squares below a million:", squares)
`,
  },
  {
    id: "file-io", title: "File I/O", source: "File Transfer — Try it: File I/O", language: "python",
    code: `import csv, json

data = {"users": [{"name": "ada", "score": 3}, {"name": "linus", "score": 5}]}
with open("/tmp/input.json", "w") as f:
    json.dump(data, f)

with open("/tmp/input.json") as f, open("/tmp/result.csv", "w", newline="") as out:
    writer = csv.writer(out)
    writer.writerow(["name", "score"])
    for user in json.load(f)["users"]:
        writer.writerow([user["name"], user["score"]])

print(open("/tmp/result.csv").read(), end="")
`,
  },
  {
    id: "network-isolation", title: "Network isolation", source: "REST API — Try it: Network Isolation", language: "bash",
    code: `# This sandbox was created with internet: false: a true air gap, no route out.
ip -brief address
echo "routes: $(ip route | wc -l)"
if curl -sS -m 3 -o /dev/null https://example.com 2>/dev/null; then
  echo "online"
else
  echo "no route out (air-gapped)"
fi
`,
  },
  {
    id: "isolation-check", title: "Isolation check", source: "Security Model — Try it: Isolation Check", language: "bash",
    code: `# Its own kernel, CPUs and memory: a microVM, not a container.
echo "kernel: $(uname -srm)"
echo "cpus:   $(nproc)"
free -m | awk '/Mem:/ {print "memory: " $2 " MiB"}'
echo "pid 1:  $(cat /proc/1/comm)"
`,
  },
  {
    id: "benchmark", title: "Benchmark", source: "Benchmarks — Try it: Benchmark", language: "javascript",
    code: `// Node.js inside the sandbox: a small CPU benchmark.
const start = process.hrtime.bigint();
let x = 0;
for (let i = 0; i < 1_000_000; i++) x = (x + i * i) % 1_000_003;
const ms = Number(process.hrtime.bigint() - start) / 1e6;
console.log(\`node \${process.version}: 1M iterations in \${ms.toFixed(1)} ms (result \${x})\`);
`,
  },
];

/** One snippet's card: its code (editable), Run, and what the run printed. */
function snippetCard(snippet) {
  const editor = h("textarea", { id: `code-${snippet.id}`, spellcheck: "false", rows: String(snippet.code.split("\n").length + 1) });
  editor.value = snippet.code;
  const keep = h("input", { type: "checkbox", id: `keep-${snippet.id}` });
  const run = h("button", { type: "button", class: "primary", id: `run-${snippet.id}` }, "Run");
  const reset = h("button", { type: "button", onclick: () => { editor.value = snippet.code; editor.focus(); } }, "Reset");
  const status = h("p", { class: "muted", id: `status-${snippet.id}`, role: "status" });
  const result = h("div", { id: `result-${snippet.id}`, "aria-live": "polite" });
  run.addEventListener("click", async () => {
    run.disabled = true;
    clear(result);
    let sandboxID = null;
    try {
      status.textContent = "Starting a fresh playground sandbox…";
      const made = await api("POST", "/sandboxes", {
        template: "playground", timeout: 300, internet: false, metadata: { console: "playground", snippet: snippet.id },
      });
      sandboxID = made.sandboxID;
      status.textContent = `Running in ${sandboxID}…`;
      const started = performance.now();
      const answer = await api("POST", `/sandboxes/${sandboxID}/code`, { code: editor.value, language: snippet.language, timeout: 60 });
      const seconds = ((performance.now() - started) / 1000).toFixed(2);
      status.textContent = `Exit code ${answer.exit_code} · ${seconds} s in ${sandboxID}`;
      result.append(
        h("h3", {}, "stdout"), h("pre", { class: "output stdout", "data-exit-code": String(answer.exit_code) }, answer.stdout || "(nothing)"));
      if (answer.stderr) result.append(h("h3", {}, "stderr"), h("pre", { class: "output stderr" }, answer.stderr));
    } catch (error) {
      status.textContent = `Failed: ${error.message}`;
      toast(error.message, true);
    }
    if (sandboxID && !keep.checked) {
      try {
        await api("DELETE", `/sandboxes/${sandboxID}`);
        status.textContent += " · sandbox killed";
      } catch (error) { toast(error.message, true); }
    } else if (sandboxID) {
      const id = sandboxID;
      const kill = h("button", { type: "button", class: "danger", onclick: async () => {
        try { await api("DELETE", `/sandboxes/${id}`); kill.disabled = true; kill.textContent = "Killed"; } catch (error) { toast(error.message, true); }
      } }, `Kill ${id}`);
      result.append(h("p", { class: "row" }, h("a", { href: `#/sandbox/${id}` }, "Open the sandbox"), kill));
    }
    run.disabled = false;
  });
  return h("section", { class: "card snippet", "aria-labelledby": `title-${snippet.id}`, "data-snippet": snippet.id },
    h("h2", { id: `title-${snippet.id}` }, snippet.title, " ", h("span", { class: "muted source" }, `${snippet.language} · from ${snippet.source}`)),
    h("label", { for: editor.id }, "Code", editor),
    h("div", { class: "row" }, run, reset, h("label", { for: keep.id, class: "check" }, keep, "Keep the sandbox after the run")),
    status, result);
}

export function playgroundPage(main) {
  clear(main).append(
    h("h1", {}, "Playground"),
    h("p", { class: "muted" }, "Snippets from the docs. Each run starts a fresh playground sandbox without internet access, runs the code once and kills the sandbox (tick the box to keep it)."),
    ...snippets.map(snippetCard));
}
