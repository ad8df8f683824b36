import { HTTPClient, type Params } from "./client.js";
import { Commands } from "./commands.js";
import { DEFAULT_PREVIEW_DOMAIN, env, resolveConfig } from "./config.js";
import { Contexts } from "./contexts.js";
import { Desktop } from "./desktop.js";
import { deriveE2EESharedKey, generateE2EEKeyPair, type E2EEKeyPairMaterial, type E2EESessionInfo } from "./e2ee.js";
import { SandboxError, SandboxNotFoundError } from "./errors.js";
import { Exposures, type CreateExposureOptions, type ExposureInfo } from "./exposures.js";
import { Filesystem } from "./filesystem.js";
import { asArray, commandResult, toSandboxInfo, type CodeResult, type CreateSandboxOptions, type FullSandboxInfo, type ListSandboxOptions, type SandboxInfo } from "./models.js";
import { Production, toMetricsSnapshot, Webhooks, type MetricsSnapshot, type NetworkPolicy } from "./production.js";
import { Pty } from "./pty.js";

interface ConnectOptions {
  apiKey?: string;
  apiUrl?: string;
  requestTimeout?: number;
  previewDomain?: string;
}

function listParams(opts?: ListSandboxOptions & { limit?: number }, nextToken?: string | null): Params {
  const metadata = opts?.metadata && Object.keys(opts.metadata).length > 0
    ? Object.entries(opts.metadata).map(([k, v]) => `${k}:${v}`).join(",")
    : undefined;
  return {
    limit: opts?.limit != null ? String(opts.limit) : undefined,
    next_token: nextToken || opts?.nextToken || undefined,
    state: opts?.state,
    metadata,
  };
}

async function fetchInfo(client: HTTPClient, sandboxId: string): Promise<Record<string, unknown>> {
  try {
    return (await client.get<Record<string, unknown>>(`/sandboxes/${sandboxId}`)) ?? {};
  } catch (err) {
    if (err instanceof SandboxError && err.status === 404) throw new SandboxNotFoundError(sandboxId);
    throw err;
  }
}

/** Pages of `Sandbox.list`, by the server's `x-next-token` cursor. */
export class SandboxPaginator {
  private readonly client: HTTPClient;
  private readonly opts: ListSandboxOptions & { limit: number };
  private nextToken: string | null = null;
  private more = true;

  constructor(opts?: ListSandboxOptions) {
    this.client = new HTTPClient(resolveConfig(opts));
    this.opts = { ...opts, limit: opts?.limit ?? 50 };
  }

  get hasNext(): boolean {
    return this.more;
  }

  async nextItems(): Promise<SandboxInfo[]> {
    if (!this.more) return [];
    const { data, headers } = await this.client.getWithHeaders("/sandboxes", listParams({ ...this.opts, nextToken: undefined }, this.nextToken));
    this.nextToken = headers.get("x-next-token") || null;
    this.more = this.nextToken !== null;
    return asArray(data).map(toSandboxInfo);
  }
}

/** A sandbox: lifecycle, and its namespaces (`commands`, `files`, `pty`, ...). */
export class Sandbox {
  readonly sandboxId: string;
  readonly commands: Commands;
  readonly files: Filesystem;
  readonly pty: Pty;
  readonly contexts: Contexts;
  readonly desktop: Desktop;
  readonly exposures: Exposures;
  readonly production: Production;
  readonly webhooks: Webhooks;
  e2ee: E2EESessionInfo | null = null;
  trafficAccessToken = "";
  private readonly client: HTTPClient;
  private readonly previewDomain: string;
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  private constructor(sandboxId: string, client: HTTPClient, previewDomain?: string) {
    this.sandboxId = sandboxId;
    this.client = client;
    this.previewDomain = previewDomain || env("OMNIRUN_PREVIEW_DOMAIN") || DEFAULT_PREVIEW_DOMAIN;
    this.commands = new Commands(sandboxId, client);
    this.files = new Filesystem(sandboxId, client);
    this.pty = new Pty(sandboxId, client);
    this.contexts = new Contexts(sandboxId, client);
    this.desktop = new Desktop(sandboxId, client);
    this.exposures = new Exposures(sandboxId, client);
    this.production = new Production(sandboxId, client);
    this.webhooks = new Webhooks(client);
  }

  /** Creates a sandbox from `template` (default `python-3.11`); `timeout` in seconds (default 300, 0 = permanent). */
  static async create(template = "python-3.11", opts?: CreateSandboxOptions): Promise<Sandbox> {
    const client = new HTTPClient(resolveConfig(opts));
    const timeout = opts?.timeout ?? 300;
    const body: Record<string, unknown> = { template, timeout };
    let keyPair: E2EEKeyPairMaterial | undefined;
    let clientPublicKey: string | undefined;
    const e2ee = opts?.e2ee === true ? {} : opts?.e2ee && (opts.e2ee.enabled ?? true) ? opts.e2ee : null;
    if (e2ee) {
      keyPair = e2ee.keyPair ?? (await generateE2EEKeyPair());
      clientPublicKey = e2ee.clientPublicKey ?? keyPair.publicKeyBase64;
      body.e2ee = true;
      body.clientPublicKey = clientPublicKey;
    }
    if (opts?.internet) body.internet = true;
    if (opts?.memory != null) body.memoryMB = opts.memory;
    if (opts?.envVars) body.envVars = opts.envVars;
    if (opts?.metadata) body.metadata = opts.metadata;
    if (opts?.autoPause) body.autoPause = true;
    if (opts?.network) body.network = opts.network;
    if (opts?.secure) body.secure = true;
    if (opts?.maskRequestHost) body.maskRequestHost = opts.maskRequestHost;
    if (opts?.vaultInject) body.vaultInject = true;

    const data = await client.post<{ sandboxID?: string; trafficToken?: string; serverPublicKey?: string; e2ee?: { serverPublicKey?: string } }>("/sandboxes", body);
    if (!data || typeof data !== "object" || !data.sandboxID) throw new SandboxError(`unexpected answer to POST /sandboxes: ${JSON.stringify(data)}`);
    const sandbox = new Sandbox(data.sandboxID, client, opts?.previewDomain);
    sandbox.trafficAccessToken = data.trafficToken ?? "";
    if (e2ee && clientPublicKey) {
      const serverPublicKey = data.serverPublicKey ?? data.e2ee?.serverPublicKey;
      sandbox.e2ee = { enabled: true, clientPublicKey, clientKeyPair: keyPair, serverPublicKey };
      if (keyPair && serverPublicKey) client.setE2EEKey(await deriveE2EESharedKey(keyPair.privateKey, serverPublicKey));
    }
    if (opts?.keepAlive != null) {
      sandbox.heartbeat = setInterval(() => {
        sandbox.setTimeout(timeout).catch(() => undefined); // a missed beat is retried at the next one
      }, opts.keepAlive * 1000);
    }
    return sandbox;
  }

  /** Attaches to a running sandbox; `SandboxNotFoundError` when there is none. */
  static async connect(sandboxId: string, opts?: ConnectOptions): Promise<Sandbox> {
    const client = new HTTPClient(resolveConfig(opts));
    await fetchInfo(client, sandboxId);
    return new Sandbox(sandboxId, client, opts?.previewDomain);
  }

  static async list(opts?: ListSandboxOptions): Promise<SandboxInfo[]> {
    const client = new HTTPClient(resolveConfig(opts));
    return asArray(await client.get("/sandboxes", listParams(opts))).map(toSandboxInfo);
  }

  static paginate(opts?: ListSandboxOptions): SandboxPaginator {
    return new SandboxPaginator(opts);
  }

  /** Destroys the sandbox (permanent) and stops the keep-alive heartbeat. */
  async kill(): Promise<void> {
    if (this.heartbeat) {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
    await this.client.delete(`/sandboxes/${this.sandboxId}`);
  }

  /** Resets the auto-kill timer to now + `timeout` seconds. */
  async setTimeout(timeout: number): Promise<void> {
    await this.client.post(`/sandboxes/${this.sandboxId}/timeout`, { timeout });
  }

  async isRunning(): Promise<boolean> {
    try {
      const data = await this.client.get<{ state?: string }>(`/sandboxes/${this.sandboxId}`);
      return data?.state === "running";
    } catch {
      return false;
    }
  }

  async getInfo(): Promise<FullSandboxInfo> {
    return toSandboxInfo(await fetchInfo(this.client, this.sandboxId));
  }

  /** One-shot code run (`python`, `javascript`, `bash`); does not throw on a non-zero exit. */
  async runCode(code: string, language = "python"): Promise<CodeResult> {
    return commandResult((await this.client.post<Record<string, never>>(`/sandboxes/${this.sandboxId}/code`, { code, language })) ?? {});
  }

  getHost(port: number): string {
    return `https://${this.sandboxId}-${port}.${this.previewDomain}`;
  }

  expose(port: number, opts?: CreateExposureOptions): Promise<ExposureInfo> {
    return this.exposures.create(port, opts);
  }

  /** A pre-signed URL that downloads `path` without the API key. */
  downloadUrl(path: string): Promise<string> {
    return this.signedUrl("download", path);
  }

  /** A pre-signed URL that uploads to `path` without the API key. */
  uploadUrl(path: string): Promise<string> {
    return this.signedUrl("upload", path);
  }

  private async signedUrl(kind: "download" | "upload", path: string): Promise<string> {
    const data = await this.client.post<{ url?: string }>(`/sandboxes/${this.sandboxId}/files/${kind}-url`, { path });
    const url = data?.url ?? "";
    return url && !url.startsWith("http") ? this.client.baseUrl + url : url;
  }

  pause(): Promise<{ status: string }> {
    return this.production.pause();
  }

  resume(): Promise<{ status: string }> {
    return this.production.resume();
  }

  async getMetrics(): Promise<MetricsSnapshot[]> {
    const data = await this.client.get<unknown>(`/sandboxes/${this.sandboxId}/metrics`);
    return Array.isArray(data) ? data.map(toMetricsSnapshot) : [];
  }

  setNetworkPolicy(policy: NetworkPolicy): Promise<void> {
    return this.production.setNetworkPolicy(policy);
  }
}
