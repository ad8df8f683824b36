// OmniRun's JavaScript kernel, the Node.js side (javascript-kernel.py starts it): runs each
// cell from stdin (JSON lines {"code"}) in one persistent vm context and answers on the fd in
// OMNIRUN_ANSWER_FD: {"type":"result","text"} for a value, {"type":"error",...}, then
// {"type":"done"}. A cell's promise is awaited; top-level `await` works by running such a cell
// as an async function (its `let`/`const` then stay local to it; `var` and globals persist).
"use strict";
const fs = require("fs");
const readline = require("readline");
const util = require("util");
const vm = require("vm");

const answers = Number(process.env.OMNIRUN_ANSWER_FD);
const MAX_TEXT = 1 << 20;
const sandbox = { require, module: { exports: {} }, console, process, Buffer, setTimeout, clearTimeout,
  setInterval, clearInterval, setImmediate, clearImmediate, queueMicrotask, URL, URLSearchParams,
  TextEncoder, TextDecoder, fetch: globalThis.fetch, structuredClone, __filename: "<cell>", __dirname: process.cwd() };
sandbox.exports = sandbox.module.exports;
sandbox.globalThis = sandbox;
const context = vm.createContext(sandbox);
// A SIGINT outside a running cell (an interrupt that came late) must not end the kernel.
process.on("SIGINT", () => {});

function answer(message) {
  fs.writeSync(answers, JSON.stringify(message) + "\n");
}

function describe(value) {
  const text = util.inspect(value, { depth: 4, maxArrayLength: 200, maxStringLength: 100000, breakLength: 100 });
  return text.length > MAX_TEXT ? text.slice(0, MAX_TEXT) + "\n… (cut)" : text;
}

function failure(error) {
  if (error instanceof Error || (error && typeof error === "object" && "stack" in error)) {
    // The cell's own frames, not the driver's.
    const lines = String(error.stack || "").split("\n");
    const stack = [lines[0], ...lines.slice(1).filter((line) => line.includes("<cell>"))].join("\n");
    return { type: "error", name: error.name || "Error", message: String(error.message || ""), stack };
  }
  return { type: "error", name: "Error", message: describe(error), stack: "Uncaught " + describe(error) };
}

function compile(code) {
  try {
    return new vm.Script(code, { filename: "<cell>" });
  } catch (error) {
    // `await` at the top level: the cell runs as an async function, whose value is the
    // cell's when the cell is one expression.
    if (error instanceof SyntaxError && /await/.test(code)) {
      try {
        return new vm.Script("(async () => { return (\n" + code + "\n) })()", { filename: "<cell>", lineOffset: -1 });
      } catch {
        return new vm.Script("(async () => {\n" + code + "\n})()", { filename: "<cell>", lineOffset: -1 });
      }
    }
    throw error;
  }
}

async function run(code) {
  try {
    let value = compile(code).runInContext(context, { breakOnSigint: true, displayErrors: false });
    if (value && typeof value.then === "function") value = await value;
    if (value !== undefined) answer({ type: "result", text: describe(value) });
  } catch (error) {
    answer(failure(error));
  }
  // What the cell printed goes out before it is reported done.
  await new Promise((resolve) => process.stdout.write("", () => process.stderr.write("", resolve)));
  answer({ type: "done" });
}

let queue = Promise.resolve();
readline.createInterface({ input: process.stdin, crlfDelay: Infinity }).on("line", (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    return;
  }
  if (typeof request.code !== "string") return;
  queue = queue.then(() => run(request.code));
});
process.on("unhandledRejection", (reason) => {
  process.stderr.write("Unhandled promise rejection: " + describe(reason) + "\n");
});
