// The ES module build (import "@omnirun/sdk", resolved through package.json "exports")
// against the live server of scripts/test-sdks.sh: the shared scenario, then lifecycle,
// limits, errors, the vault and the README's examples.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import * as sdk from "@omnirun/sdk";
import { runStep, scenario } from "./scenario.mjs";

const { RateLimitError, Sandbox, SandboxError, SandboxNotFoundError, Vault, Webhooks, HTTPClient, resolveConfig } = sdk;

async function rejects(promise, Type) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof Type, `expected ${Type.name}, got ${err?.name}: ${err?.message}`);
    return err;
  }
  assert.fail(`expected ${Type.name}`);
}

describe("scenario (ESM)", () => {
  let sandbox;
  before(async () => {
    sandbox = await Sandbox.create(scenario.template, { timeout: 900 });
  });
  after(async () => {
    await sandbox?.kill();
  });
  for (const step of scenario.steps) {
    it(step.name, () => runStep(sdk, sandbox, step));
  }
});

describe("lifecycle and account (ESM)", () => {
  it("creates, lists, pages, connects and kills", async () => {
    const tag = Math.random().toString(36).slice(2, 10);
    const sbx = await Sandbox.create("playground", { timeout: 120, metadata: { suite: "typescript", tag } });
    try {
      assert.match(sbx.sandboxId, /^sb_[A-Za-z0-9]+$/);
      const info = await sbx.getInfo();
      assert.equal(info.sandboxId, sbx.sandboxId);
      assert.equal(info.state, "running");
      assert.equal(info.templateId, "playground");
      assert.ok(await sbx.isRunning());
      assert.deepEqual((await Sandbox.list({ metadata: { tag } })).map((s) => s.sandboxId), [sbx.sandboxId]);
      const pages = Sandbox.paginate({ limit: 1, metadata: { suite: "typescript" } });
      const seen = [];
      while (pages.hasNext) seen.push(...(await pages.nextItems()).map((s) => s.sandboxId));
      assert.ok(seen.includes(sbx.sandboxId));
      await sbx.setTimeout(300);
      const again = await Sandbox.connect(sbx.sandboxId);
      assert.equal((await again.commands.run("echo connected")).stdout, "connected\n");
      assert.equal(sbx.getHost(8080), `https://${sbx.sandboxId}-8080.omnirun-preview.dev`);
    } finally {
      await sbx.kill();
    }
    assert.equal(await sbx.isRunning(), false);
    await rejects(sbx.getInfo(), SandboxNotFoundError);
    await rejects(Sandbox.connect(sbx.sandboxId), SandboxNotFoundError);
  });

  it("reports a bad key and an unknown template", async () => {
    const bad = await rejects(Sandbox.list({ apiKey: "omr_not_a_key" }), SandboxError);
    assert.equal(bad.status, 401);
    const unknown = await rejects(Sandbox.create("no-such-template"), SandboxError);
    assert.ok([400, 404].includes(unknown.status) && unknown.message.includes("no-such-template"), unknown.message);
  });

  it("answers the 4th concurrent sandbox with a RateLimitError", async () => {
    const apiKey = process.env.OMNIRUN_TEST_LIMIT_KEY;
    const running = [];
    try {
      for (let i = 0; i < 3; i++) running.push(await Sandbox.create("playground", { timeout: 120, apiKey }));
      const err = await rejects(Sandbox.create("playground", { timeout: 120, apiKey }), RateLimitError);
      assert.equal(err.status, 429);
      assert.equal((await Sandbox.list({ apiKey })).length, 3);
    } finally {
      for (const sbx of running) await sbx.kill();
    }
  });

  it("internet: a network card, DNS, and a live policy", async () => {
    // Nothing here leaves the host: the probed address is refused inside the sandbox's own namespace.
    const sbx = await Sandbox.create("playground", { timeout: 120, internet: true });
    try {
      assert.match((await sbx.commands.run("ls /sys/class/net")).stdout, /eth0/);
      assert.match((await sbx.commands.run("cat /etc/resolv.conf")).stdout, /nameserver 10\.0\.2\.2/);
      await sbx.setNetworkPolicy({ allowIPs: ["198.51.100.7"] });
      const probe = `python3 -c "import socket\ntry:\n socket.create_connection(('203.0.113.9', 443), timeout=3); print('open')\nexcept OSError as e: print('refused', e)"`;
      assert.match((await sbx.commands.run(probe)).stdout, /^refused/);
    } finally {
      await sbx.kill();
    }
  });

  it("secure mode and autoPause at create", async () => {
    const sbx = await Sandbox.create("playground", { timeout: 60, secure: true, autoPause: true });
    try {
      assert.equal((await sbx.commands.run("echo ok")).stdout, "ok\n");
    } finally {
      await sbx.kill();
    }
  });

  it("e2ee: every body sealed with the P-256 channel key", async () => {
    const sbx = await Sandbox.create("playground", { timeout: 60, e2ee: true });
    try {
      assert.equal((await sbx.commands.run("echo sealed")).stdout, "sealed\n");
      await sbx.files.write("/tmp/e2ee.txt", "secret text");
      assert.equal(await sbx.files.read("/tmp/e2ee.txt"), "secret text");
      // Bodies carry aad "<METHOD> <target>", answers "response <METHOD> <target>", query included.
      await sbx.files.write("/tmp/e2ee dir/a b.txt", "spaced");
      assert.equal(await sbx.files.read("/tmp/e2ee dir/a b.txt"), "spaced");
      assert.deepEqual((await sbx.files.list("/tmp/e2ee dir")).map((e) => e.name), ["a b.txt"]);
    } finally {
      await sbx.kill();
    }
  });

  it("webhooks: list, and loopback addresses refused", async () => {
    const hooks = new Webhooks(new HTTPClient(resolveConfig()));
    assert.ok(Array.isArray(await hooks.list()));
    const err = await rejects(hooks.create("http://127.0.0.1:9/hook", ["created"]), SandboxError);
    assert.equal(err.status, 400);
  });

  it("vault: set, list, inject into a sandbox, delete", async () => {
    const vault = new Vault();
    const name = "SDK_SECRET_" + Math.random().toString(36).slice(2, 8).toUpperCase();
    await vault.set(name, "s3cr3t value");
    try {
      assert.ok((await vault.list()).some((c) => c.key === name));
      const sbx = await Sandbox.create("playground", { timeout: 60, vaultInject: true, envVars: { FROM_CREATE: "yes" } });
      try {
        assert.equal((await sbx.commands.run(`echo $${name} $FROM_CREATE`)).stdout, "s3cr3t value yes\n");
      } finally {
        await sbx.kill();
      }
    } finally {
      await vault.delete(name);
    }
    assert.ok(!(await vault.list()).some((c) => c.key === name));
  });

  it("runs the README's examples", () => {
    const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.ok(blocks.length >= 2, "README has examples");
    blocks.forEach((code, i) => {
      // Written inside the package so that "@omnirun/sdk" resolves to this build.
      const file = fileURLToPath(new URL(`../.readme-example-${i}.mjs`, import.meta.url));
      writeFileSync(file, code);
      try {
        execFileSync(process.execPath, [file], { stdio: ["ignore", "pipe", "inherit"], timeout: 120_000 });
      } finally {
        rmSync(file, { force: true });
      }
    });
  });
});
