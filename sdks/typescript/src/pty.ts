import type { HTTPClient } from "./client.js";
import { asArray, type PtyInfo } from "./models.js";

/** `sandbox.pty`: interactive terminals, by polling. */
export class Pty {
  private readonly sandboxId: string;
  private readonly client: HTTPClient;

  constructor(sandboxId: string, client: HTTPClient) {
    this.sandboxId = sandboxId;
    this.client = client;
  }

  async create(opts?: { cols?: number; rows?: number }): Promise<PtySession> {
    const data = await this.client.post<{ pid: number }>(`/sandboxes/${this.sandboxId}/pty`, { cols: opts?.cols ?? 80, rows: opts?.rows ?? 24 });
    return new PtySession(data.pid, this.sandboxId, this.client);
  }

  async list(): Promise<PtyInfo[]> {
    return asArray(await this.client.get(`/sandboxes/${this.sandboxId}/pty`)).map((p) => ({
      pid: p.pid ?? 0,
      running: p.running ?? false,
      startedAt: p.startedAt,
    }));
  }
}

export class PtySession {
  readonly pid: number;
  private readonly client: HTTPClient;
  private readonly path: string;

  constructor(pid: number, sandboxId: string, client: HTTPClient) {
    this.pid = pid;
    this.client = client;
    this.path = `/sandboxes/${sandboxId}/pty/${pid}`;
  }

  async sendStdin(data: string): Promise<void> {
    await this.client.post(`${this.path}/input`, { data });
  }

  async resize(cols: number, rows: number): Promise<void> {
    await this.client.post(`${this.path}/resize`, { cols, rows });
  }

  /** The output since the previous read ("" when there is none; never blocks). */
  async read(): Promise<string> {
    const data = await this.client.get<{ data?: string }>(`${this.path}/read`);
    return data?.data ?? "";
  }

  async kill(): Promise<void> {
    await this.client.delete(this.path);
  }
}
