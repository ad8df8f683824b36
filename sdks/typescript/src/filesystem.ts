import type { HTTPClient, Params } from "./client.js";
import { asArray, toEntry, type EntryInfo, type FilesystemEvent, type WriteEntry } from "./models.js";

export interface FileReadOptions {
  user?: string;
}
export interface FileWriteOptions {
  user?: string;
}
export interface FileListOptions {
  depth?: number;
  user?: string;
}

/** Watches a folder: events collect in the background; `getNewEvents()` drains them, `stop()` closes the stream. */
export class WatchHandle {
  private events: FilesystemEvent[] = [];
  private readonly controller = new AbortController();
  /** The error that ended the stream early, if any. */
  error: Error | null = null;

  constructor(client: HTTPClient, path: string, params: Params) {
    void this.follow(client, path, params);
  }

  private async follow(client: HTTPClient, path: string, params: Params): Promise<void> {
    try {
      for await (const event of client.streamSSE<FilesystemEvent>("GET", path, { params, signal: this.controller.signal })) {
        if (event && event.type) this.events.push(event);
      }
    } catch (err) {
      if (!this.controller.signal.aborted) this.error = err as Error;
    }
  }

  getNewEvents(): FilesystemEvent[] {
    const events = this.events;
    this.events = [];
    return events;
  }

  stop(): void {
    this.controller.abort();
  }
}

/** `sandbox.files`. */
export class Filesystem {
  private readonly sandboxId: string;
  private readonly client: HTTPClient;

  constructor(sandboxId: string, client: HTTPClient) {
    this.sandboxId = sandboxId;
    this.client = client;
  }

  private get base(): string {
    return `/sandboxes/${this.sandboxId}/files`;
  }

  async read(path: string, format?: "text", opts?: FileReadOptions): Promise<string>;
  async read(path: string, format: "bytes", opts?: FileReadOptions): Promise<Uint8Array>;
  async read(path: string, format: "stream", opts?: FileReadOptions): Promise<ReadableStream<Uint8Array>>;
  async read(path: string, format: "text" | "bytes" | "stream" = "text", opts?: FileReadOptions): Promise<string | Uint8Array | ReadableStream<Uint8Array>> {
    const params: Params = { path, user: opts?.user };
    if (format === "bytes") return this.client.download(`${this.base}/download`, params);
    if (format === "stream") return this.client.streamDownload(`${this.base}/download`, params);
    const data = await this.client.get<{ content?: string }>(this.base, params);
    return data?.content ?? "";
  }

  /** Text (JSON), bytes (multipart upload) or a batch of text files. Parent folders are created. */
  async write(path: string, content: string | Uint8Array, opts?: FileWriteOptions): Promise<EntryInfo>;
  async write(entries: WriteEntry[]): Promise<EntryInfo[]>;
  async write(pathOrEntries: string | WriteEntry[], content?: string | Uint8Array, opts?: FileWriteOptions): Promise<EntryInfo | EntryInfo[]> {
    if (Array.isArray(pathOrEntries)) {
      const data = await this.client.post(`${this.base}/batch`, pathOrEntries.map((e) => ({ path: e.path, content: e.content })));
      return asArray(data).map((e) => toEntry(e));
    }
    const path = pathOrEntries;
    const name = path.split("/").pop() || "upload";
    if (content instanceof Uint8Array) {
      const data = (await this.client.upload<Record<string, any>>(`${this.base}/upload`, path, content, name, { user: opts?.user })) ?? {};
      return { name: data.name ?? name, path: data.path ?? path, isDir: false, size: data.size ?? content.length };
    }
    const text = content ?? "";
    const body: Record<string, unknown> = { path, content: text };
    if (opts?.user) body.user = opts.user;
    const data = (await this.client.post<Record<string, any>>(this.base, body)) ?? {};
    return { name, path: data.path ?? path, isDir: false, size: new TextEncoder().encode(text).length };
  }

  async list(path = "/", opts?: FileListOptions): Promise<EntryInfo[]> {
    const depth = opts?.depth != null && opts.depth !== 1 ? String(opts.depth) : undefined;
    return asArray(await this.client.get(`${this.base}/list`, { path, depth, user: opts?.user })).map((e) => toEntry(e));
  }

  async exists(path: string, opts?: FileReadOptions): Promise<boolean> {
    const data = await this.client.get<{ exists?: boolean }>(`${this.base}/exists`, { path, user: opts?.user });
    return data?.exists ?? false;
  }

  async info(path: string, opts?: FileReadOptions): Promise<EntryInfo> {
    return toEntry((await this.client.get<Record<string, unknown>>(`${this.base}/info`, { path, user: opts?.user })) ?? {}, path);
  }

  async remove(path: string, opts?: FileWriteOptions): Promise<void> {
    await this.client.delete(this.base, { path, user: opts?.user });
  }

  async rename(oldPath: string, newPath: string, opts?: FileWriteOptions): Promise<EntryInfo> {
    const body: Record<string, unknown> = { oldPath, newPath };
    if (opts?.user) body.user = opts.user;
    return toEntry((await this.client.post<Record<string, unknown>>(`${this.base}/rename`, body)) ?? {}, newPath);
  }

  /** Like `mkdir -p`. */
  async makeDir(path: string, opts?: FileWriteOptions): Promise<void> {
    const body: Record<string, unknown> = { path };
    if (opts?.user) body.user = opts.user;
    await this.client.post(`${this.base}/mkdir`, body);
  }

  watchDir(path: string, opts?: { recursive?: boolean }): WatchHandle {
    return new WatchHandle(this.client, `${this.base}/watch`, { path, recursive: opts?.recursive ? "true" : undefined });
  }
}
