// The shared scenario (sdks/scenario.json), step by step: the TypeScript twin of
// sdks/python/tests/test_scenario.py. `sdk` is the package as loaded by the caller
// (import in ESM, require in CommonJS), so both builds run the same steps.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

export const scenario = JSON.parse(readFileSync(new URL("../../scenario.json", import.meta.url), "utf8"));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

async function rejectsWith(promise, Type, check) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Type, `expected ${Type.name}, got ${err?.name}: ${err?.message}`);
    check?.(err);
    return err;
  }
  assert.fail(`expected ${Type.name}, nothing was thrown`);
}

export async function runStep(sdk, sandbox, step, opts = {}) {
  const { CommandExitException, LLM, NotAvailableError, Templates } = sdk;
  switch (step.op) {
    case "run": {
      const run = sandbox.commands.run(step.cmd, { envs: step.envs, cwd: step.cwd });
      if (step.exitCode === 0) {
        const result = await run;
        assert.equal(result.stdout, step.stdout);
        assert.equal(result.exitCode, 0);
      } else {
        await rejectsWith(run, CommandExitException, (e) => {
          assert.deepEqual([e.exitCode, e.stdout, e.stderr], [step.exitCode, step.stdout, step.stderr]);
        });
      }
      return;
    }
    case "stream": {
      const seen = [];
      const opts2 = {
        onStdout: (d) => seen.push(["out", d, performance.now()]),
        onStderr: (d) => seen.push(["err", d, performance.now()]),
      };
      const outs = () => seen.filter(([k]) => k === "out").map(([, d]) => d).join("");
      if (step.exitCode === 0) {
        const result = await sandbox.commands.run(step.cmd, opts2);
        assert.equal(result.stdout, step.stdout);
        assert.equal(result.stderr, step.stderr);
        assert.equal(outs(), step.stdout);
        const times = Object.fromEntries(seen.filter(([k, d]) => k === "out" && d.split("\n").length === 2).map(([, d, t]) => [d.trim(), t]));
        if (times["line-1"] && times["line-3"]) assert.ok(times["line-3"] - times["line-1"] > 200, "chunks arrive as produced");
        assert.equal(seen.filter(([k]) => k === "err").map(([, d]) => d).join(""), step.stderr);
      } else {
        await rejectsWith(sandbox.commands.run(step.cmd, opts2), CommandExitException, (e) => assert.equal(e.exitCode, step.exitCode));
        assert.equal(outs(), step.stdout);
      }
      return;
    }
    case "background": {
      const handle = await sandbox.commands.run(step.cmd, { background: true });
      assert.ok(handle.pid > 0);
      assert.ok((await sandbox.commands.list()).some((p) => p.pid === handle.pid));
      await handle.sendStdin(step.stdin);
      const result = await handle.wait(30_000);
      assert.deepEqual([result.stdout, result.exitCode], [step.stdout, step.exitCode]);
      assert.equal((await sandbox.commands.connect(handle.pid).wait(5_000)).stdout, step.stdout);
      return;
    }
    case "background-kill": {
      const handle = await sandbox.commands.run(step.cmd, { background: true });
      assert.ok((await handle.getInfo()).running);
      await handle.kill();
      const deadline = Date.now() + 15_000;
      while ((await handle.getInfo()).running && Date.now() < deadline) await sleep(200);
      assert.equal((await handle.getInfo()).running, false);
      return;
    }
    case "code": {
      const result = await sandbox.runCode(step.code, step.language);
      assert.deepEqual([result.stdout, result.exitCode], [step.stdout, 0]);
      return;
    }
    case "text": {
      await sandbox.files.write(step.path, step.content);
      assert.equal(await sandbox.files.read(step.path), step.content);
      assert.equal((await sandbox.files.info(step.path)).size, Buffer.byteLength(step.content));
      return;
    }
    case "bytes": {
      const mib = opts.maxMiB ? Math.min(opts.maxMiB, step.mib) : step.mib;
      const blob = new Uint8Array(randomBytes(mib << 20));
      const digest = sha256(blob);
      const info = await sandbox.files.write(step.path, blob);
      assert.equal(info.size, blob.length);
      assert.equal((await sandbox.commands.run(`sha256sum ${step.path}`)).stdout.split(" ")[0], digest);
      const back = await sandbox.files.read(step.path, "bytes");
      assert.equal(back.length, blob.length);
      assert.equal(sha256(back), digest);
      const hash = createHash("sha256");
      for await (const chunk of await sandbox.files.read(step.path, "stream")) hash.update(chunk);
      assert.equal(hash.digest("hex"), digest);
      const url = await sandbox.downloadUrl(step.path); // works without the key
      assert.equal(sha256(new Uint8Array(await (await fetch(url)).arrayBuffer())), digest);
      await sandbox.files.remove(step.path);
      return;
    }
    case "batch": {
      const entries = Object.entries(step.files).map(([name, content]) => ({ path: `${step.dir}/${name}`, content }));
      const written = await sandbox.files.write(entries);
      assert.deepEqual(written.map((e) => e.path).sort(), entries.map((e) => e.path).sort());
      const listed = Object.fromEntries((await sandbox.files.list(step.dir)).map((e) => [e.name, e]));
      assert.deepEqual(Object.keys(listed).sort(), Object.keys(step.files).sort());
      for (const [name, content] of Object.entries(step.files)) {
        assert.equal(listed[name].size, content.length);
        assert.equal(listed[name].isDir, false);
      }
      return;
    }
    case "fs": {
      const d = step.dir;
      await sandbox.files.makeDir(`${d}/sub/deeper`);
      assert.ok((await sandbox.files.info(`${d}/sub`)).isDir);
      await sandbox.files.write(`${d}/sub/f.txt`, "f");
      assert.ok(await sandbox.files.exists(`${d}/sub/f.txt`));
      assert.equal(await sandbox.files.exists(`${d}/missing`), false);
      assert.equal((await sandbox.files.rename(`${d}/sub/f.txt`, `${d}/g.txt`)).path, `${d}/g.txt`);
      assert.equal(await sandbox.files.exists(`${d}/sub/f.txt`), false);
      assert.ok((await sandbox.files.list(d, { depth: 2 })).some((e) => e.path === `${d}/sub/deeper`));
      await sandbox.files.remove(`${d}/g.txt`);
      assert.equal(await sandbox.files.exists(`${d}/g.txt`), false);
      return;
    }
    case "watch": {
      await sandbox.files.makeDir(step.dir);
      const watch = sandbox.files.watchDir(step.dir);
      try {
        await sleep(1000);
        const path = `${step.dir}/${step.file}`;
        await sandbox.files.write(path, "x");
        const events = [];
        const deadline = Date.now() + 15_000;
        while (Date.now() < deadline && !events.some((e) => e.path === path)) {
          await sleep(200);
          events.push(...watch.getNewEvents());
        }
        assert.ok(events.some((e) => e.path === path && ["create", "write"].includes(e.type)), JSON.stringify(events));
      } finally {
        watch.stop();
      }
      return;
    }
    case "pty": {
      const session = await sandbox.pty.create({ cols: 100, rows: 30 });
      try {
        assert.ok((await sandbox.pty.list()).some((p) => p.pid === session.pid));
        await session.resize(120, 40);
        await session.sendStdin("stty size\n" + step.input);
        let output = "";
        const deadline = Date.now() + 20_000;
        while (Date.now() < deadline && !(output.includes(step.expect) && output.includes("40 120"))) {
          await sleep(200);
          output += await session.read();
        }
        assert.ok(output.includes(step.expect) && output.includes("40 120"), output);
      } finally {
        await session.kill();
      }
      return;
    }
    case "llm-models":
      assert.ok((await new LLM().listModels()).some((m) => m.id === step.model));
      return;
    case "llm-chat": {
      const answer = await new LLM().chatCompletion({ model: step.model, messages: [{ role: "user", content: step.prompt }] });
      assert.equal(answer.choices[0].message.content, step.text);
      const usage = await new LLM().getUsage();
      for (const key of ["spendUsedCents", "spendCapCents", "remainingCents"]) assert.equal(typeof usage[key], "number");
      return;
    }
    case "llm-stream": {
      const chunks = [];
      for await (const text of new LLM().streamChatCompletion({ model: step.model, messages: [{ role: "user", content: step.prompt }] })) chunks.push(text);
      assert.equal(chunks.join(""), step.text);
      assert.ok(chunks.length >= step.minChunks, `${chunks.length} chunks`);
      return;
    }
    case "templates":
      assert.ok((await new Templates().list()).some((t) => t.name === step.includes));
      return;
    case "metrics": {
      assert.ok(Array.isArray(await sandbox.production.metricsSnapshots()));
      await sandbox.production.metrics();
      return;
    }
    case "expose": {
      const info = await sandbox.expose(step.port);
      assert.equal(info.port, step.port);
      assert.ok(info.url.startsWith("http") && ["pending", "ready"].includes(info.status), JSON.stringify(info));
      assert.ok((await sandbox.exposures.list()).some((e) => e.id === info.id));
      await sandbox.exposures.close(info.id);
      assert.equal((await sandbox.exposures.get(info.id)).status, "revoked");
      return;
    }
    case "desktop-absent": {
      await rejectsWith(sandbox.desktop.getScreen(), sdk.SandboxError, (e) => assert.equal(e.status, 409));
      // the screenshot's scaling options reach the server (checked before the sandbox is)
      await rejectsWith(sandbox.desktop.screenshot({ maxWidth: 0 }), sdk.SandboxError, (e) => {
        assert.equal(e.status, 400);
        assert.match(e.message, /maxWidth/);
      });
      return;
    }
    case "pause-resume": {
      assert.equal((await sandbox.pause()).status, "paused");
      assert.equal((await sandbox.resume()).status, "running");
      assert.equal((await sandbox.commands.run(step.cmd)).stdout, step.stdout);
      return;
    }
    case "contexts": {
      const ctx = await sandbox.contexts.create("python", { cwd: step.cwd });
      assert.ok(ctx.id && ctx.language === "python" && ctx.cwd === step.cwd && ctx.createdAt, JSON.stringify(ctx));
      await sandbox.contexts.execute(ctx.id, step.set);
      const got = await sandbox.contexts.execute(ctx.id, step.get);
      assert.deepEqual(got.results.map((r) => r.text), [step.text]);
      assert.equal(got.error, undefined);
      const chunks = [];
      const streamed = await sandbox.contexts.execute(ctx.id, step.stream, { onStdout: (c) => chunks.push(c) });
      assert.equal(chunks.join(""), step.stdout);
      assert.equal(streamed.executionCount, 3);
      const failed = await sandbox.contexts.execute(ctx.id, step.raise);
      assert.ok(failed.error?.startsWith(step.error) && failed.logs.stderr.includes(step.error), JSON.stringify(failed));
      assert.ok((await sandbox.contexts.list()).some((c) => c.id === ctx.id));
      assert.equal((await sandbox.contexts.restart(ctx.id)).id, ctx.id);
      assert.ok((await sandbox.contexts.execute(ctx.id, step.get)).error?.startsWith("NameError"));
      await sandbox.contexts.delete(ctx.id);
      assert.ok(!(await sandbox.contexts.list()).some((c) => c.id === ctx.id));
      await rejectsWith(sandbox.contexts.create(step.badLanguage), sdk.SandboxError, (e) => {
        assert.equal(e.status, 400);
        assert.ok(e.message.includes("python"), e.message);
      });
      return;
    }
    case "network-policy-air-gapped": {
      // The scenario's sandbox has no network card: a policy has nothing to apply to.
      await rejectsWith(sandbox.setNetworkPolicy({ allowIPs: ["192.0.2.1"] }), sdk.SandboxError, (e) => assert.equal(e.status, 409));
      return;
    }
    case "not-available": {
      const call = {
        pause: () => sandbox.pause(),
        metrics: () => sandbox.production.metrics(),
        "network-policy": () => sandbox.setNetworkPolicy({ allowIPs: ["1.1.1.1"] }),
        exposures: () => sandbox.expose(8000),
        desktop: () => sandbox.desktop.getScreen(),
      }[step.call];
      await rejectsWith(call(), NotAvailableError, (e) => {
        assert.equal(e.status, 501);
        assert.equal(e.code, "not_implemented");
      });
      return;
    }
    default:
      assert.fail(`unknown scenario op ${step.op}`);
  }
}
