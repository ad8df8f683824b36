// The CommonJS build (require("@omnirun/sdk")) runs the shared scenario too; the 50 MiB
// round trip is cut to 4 MiB here (the ESM run does the full size).
const assert = require("node:assert/strict");
const { after, before, describe, it } = require("node:test");
const sdk = require("@omnirun/sdk");

describe("scenario (CommonJS)", () => {
  let sandbox;
  let scenario;
  let runStep;
  before(async () => {
    ({ scenario, runStep } = await import("./scenario.mjs"));
    sandbox = await sdk.Sandbox.create(scenario.template, { timeout: 900 });
  });
  after(async () => {
    await sandbox?.kill();
  });

  it("is the CommonJS build", () => {
    assert.match(require.resolve("@omnirun/sdk"), /dist[\\/]cjs[\\/]index\.js$/);
    assert.ok(new sdk.CommandExitException("", "", 1) instanceof sdk.SandboxError);
  });

  it("runs every step of the scenario", async (t) => {
    for (const step of scenario.steps) {
      await t.test(step.name, () => runStep(sdk, sandbox, step, { maxMiB: 4 }));
    }
  });
});
