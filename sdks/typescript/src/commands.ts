import type { HTTPClient } from "./client.js";
import { CommandExitException, TimeoutError } from "./errors.js";
import { asArray, commandResult, toProcessInfo, type CommandResult, type ProcessInfo, type RunCommandOptions, type StreamEvent } from "./models.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** A background command: wait for it, feed its stdin, kill it, or iterate its events. */
export class CommandHandle {
  readonly pid: number;
  private readonly client: HTTPClient;
  private readonly path: string;
  private result: CommandResult | null = null;

  constructor(pid: number, sandboxId: string, client: HTTPClient) {
    this.pid = pid;
    this.client = client;
    this.path = `/sandboxes/${sandboxId}/commands/${pid}`;
  }

  /** Polls every 500 ms until the command ends; resolves with its whole output (does not throw on a non-zero exit). */
  async wait(timeoutMs = 60_000): Promise<CommandResult> {
    if (this.result) return this.result;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const info = await this.getInfo();
      if (!info.running) {
        this.result = commandResult({ stdout: info.stdout ?? "", stderr: info.stderr ?? "", exitCode: info.exitCode });
        return this.result;
      }
      await sleep(500);
    }
    throw new TimeoutError(`Process ${this.pid} did not finish within ${timeoutMs}ms`);
  }

  async getInfo(): Promise<ProcessInfo> {
    return toProcessInfo((await this.client.get<Record<string, unknown>>(this.path)) ?? {});
  }

  async kill(): Promise<void> {
    await this.client.delete(this.path);
  }

  async sendStdin(data: string): Promise<void> {
    await this.client.post(`${this.path}/stdin`, { data });
  }

  /** Follows the output (replayed from the start) to the callbacks until the command exits. */
  async stream(opts?: { onStdout?: (data: string) => void; onStderr?: (data: string) => void }): Promise<CommandResult> {
    const stdout: string[] = [];
    const stderr: string[] = [];
    let exitCode = 0;
    for await (const event of this) {
      if (event.type === "stdout" && event.data) {
        stdout.push(event.data);
        opts?.onStdout?.(event.data);
      } else if (event.type === "stderr" && event.data) {
        stderr.push(event.data);
        opts?.onStderr?.(event.data);
      } else if (event.type === "exit") {
        exitCode = event.exit_code ?? 0;
      }
    }
    this.result = commandResult({ stdout: stdout.join(""), stderr: stderr.join(""), exitCode });
    return this.result;
  }

  /** The command's events (`stdout`, `stderr`, then `exit`). */
  async *[Symbol.asyncIterator](): AsyncGenerator<StreamEvent> {
    for await (const event of this.client.streamSSE<StreamEvent>("GET", `${this.path}/stream`)) {
      yield event;
      if (event.type === "exit") return;
    }
  }
}

/** `sandbox.commands`. */
export class Commands {
  private readonly sandboxId: string;
  private readonly client: HTTPClient;

  constructor(sandboxId: string, client: HTTPClient) {
    this.sandboxId = sandboxId;
    this.client = client;
  }

  private get base(): string {
    return `/sandboxes/${this.sandboxId}/commands`;
  }

  /**
   * Runs `cmd` with bash. Resolves with the output, or throws `CommandExitException` on a
   * non-zero exit; with `background: true`, resolves at once with a `CommandHandle`. With
   * `onStdout`/`onStderr`, the output reaches the callbacks as it is produced.
   */
  async run(cmd: string, opts: RunCommandOptions & { background: true }): Promise<CommandHandle>;
  async run(cmd: string, opts?: RunCommandOptions): Promise<CommandResult>;
  async run(cmd: string, opts?: RunCommandOptions): Promise<CommandResult | CommandHandle> {
    const body: Record<string, unknown> = { command: cmd, timeout: opts?.timeout ?? 60 };
    if (opts?.cwd) body.cwd = opts.cwd;
    if (opts?.envs) body.envs = opts.envs;
    if (opts?.user) body.user = opts.user;
    const streamed = !!(opts?.onStdout || opts?.onStderr);
    if (opts?.background || streamed) {
      body.background = true;
      const { pid } = await this.client.post<{ pid: number }>(this.base, body);
      const handle = new CommandHandle(pid, this.sandboxId, this.client);
      if (opts?.background) return handle;
      return this.checked(await handle.stream({ onStdout: opts?.onStdout, onStderr: opts?.onStderr }));
    }
    return this.checked(commandResult((await this.client.post<Record<string, never>>(this.base, body)) ?? {}));
  }

  private checked(result: CommandResult): CommandResult {
    if (result.exitCode !== 0) throw new CommandExitException(result.stdout, result.stderr, result.exitCode);
    return result;
  }

  async list(): Promise<ProcessInfo[]> {
    return asArray(await this.client.get(this.base)).map(toProcessInfo);
  }

  async get(pid: number): Promise<ProcessInfo> {
    return toProcessInfo((await this.client.get<Record<string, unknown>>(`${this.base}/${pid}`)) ?? {});
  }

  async kill(pid: number): Promise<void> {
    await this.client.delete(`${this.base}/${pid}`);
  }

  async sendStdin(pid: number, data: string): Promise<void> {
    await this.client.post(`${this.base}/${pid}/stdin`, { data });
  }

  connect(pid: number): CommandHandle {
    return new CommandHandle(pid, this.sandboxId, this.client);
  }
}
