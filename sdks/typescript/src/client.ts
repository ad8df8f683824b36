import type { ConnectionConfig } from "./config.js";
import { decryptE2EEJSON, encryptE2EEJSON, type EncryptedEnvelope } from "./e2ee.js";
import { apiError, SandboxError, TimeoutError } from "./errors.js";

export type Params = Record<string, string | undefined>;

const RETRIED = new Set([502, 503, 504]);

/**
 * The HTTP transport over the built-in `fetch`. Auth is `X-API-Key`. A 502/503/504 answer
 * to an idempotent call (GET, DELETE) is retried once; POSTs, streams and downloads are not.
 */
export class HTTPClient {
  readonly baseUrl: string;
  private readonly config: ConnectionConfig;
  private e2eeKey: CryptoKey | null = null;

  constructor(config: ConnectionConfig) {
    this.config = config;
    this.baseUrl = config.apiUrl.replace(/\/+$/, "");
  }

  /** Once set, POST bodies travel encrypted and encrypted answers are opened. */
  setE2EEKey(key: CryptoKey | null): void {
    this.e2eeKey = key;
  }

  url(path: string, params?: Params): string {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(params ?? {})) {
      if (value !== undefined) url.searchParams.set(name, value);
    }
    return url.toString();
  }

  private headers(accept?: string, json = false): Record<string, string> {
    const headers: Record<string, string> = {};
    if (this.config.apiKey) headers["X-API-Key"] = this.config.apiKey;
    if (accept) headers.Accept = accept;
    if (json) headers["Content-Type"] = "application/json";
    // Holding the key: GET answers come back sealed too (the server cannot tell otherwise).
    if (this.e2eeKey) headers["X-OmniRun-E2EE"] = "seal";
    return headers;
  }

  private async send(method: string, path: string, params: Params | undefined, init: RequestInit, retry: boolean): Promise<Response> {
    const attempts = retry ? 2 : 1;
    for (let attempt = 1; ; attempt++) {
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), this.config.requestTimeout);
      let response: Response;
      try {
        response = await fetch(this.url(path, params), { ...init, method, signal: controller.signal });
        if (!(RETRIED.has(response.status) && attempt < attempts)) {
          // Read the body inside the timeout.
          const body = await response.arrayBuffer();
          return new Response(response.status === 204 ? null : body, { status: response.status, headers: response.headers });
        }
      } catch (err) {
        if (controller.signal.aborted) throw new TimeoutError(`${method} ${path} timed out after ${this.config.requestTimeout} ms`);
        throw new SandboxError(`request failed: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
      }
    }
  }

  /** What an e2ee envelope's `aad` names: the method and the target (path and query) as sent. */
  route(method: string, path: string, params?: Params): string {
    const url = new URL(this.url(path, params));
    return `${method} ${url.pathname}${url.search}`;
  }

  private async parse<T>(response: Response, route?: string): Promise<T> {
    if (!response.ok) {
      throw apiError(response.status, await response.text(), response.headers.get("retry-after"));
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    if (!(response.headers.get("content-type") ?? "").includes("application/json")) return text as T;
    const data: unknown = text ? JSON.parse(text) : undefined;
    if (this.e2eeKey && data && typeof data === "object" && "_encrypted" in data) {
      const envelope = (data as { _encrypted: EncryptedEnvelope })._encrypted;
      // An answer is sealed for its own request: one for another route is refused.
      if (route && envelope.aad !== `response ${route}`) {
        throw new SandboxError("e2ee: the answer is bound to another request (aad mismatch)");
      }
      return decryptE2EEJSON<T>(this.e2eeKey, envelope);
    }
    return data as T;
  }

  async get<T = unknown>(path: string, params?: Params): Promise<T> {
    return this.parse<T>(await this.send("GET", path, params, { headers: this.headers() }, true), this.route("GET", path, params));
  }

  async getWithHeaders<T = unknown>(path: string, params?: Params): Promise<{ data: T; headers: Headers }> {
    const response = await this.send("GET", path, params, { headers: this.headers() }, true);
    return { data: await this.parse<T>(response, this.route("GET", path, params)), headers: response.headers };
  }

  /** With an e2ee key the body is sealed with `aad` = "POST <path>", so it opens on this route only. */
  async post<T = unknown>(path: string, body?: unknown): Promise<T> {
    const route = this.route("POST", path);
    let payload = body;
    if (this.e2eeKey && body !== undefined && body !== null) {
      payload = { _encrypted: await encryptE2EEJSON(this.e2eeKey, body, route) };
    }
    const init: RequestInit = { headers: this.headers(undefined, true) };
    if (payload !== undefined) init.body = JSON.stringify(payload);
    return this.parse<T>(await this.send("POST", path, undefined, init, false), route);
  }

  async delete(path: string, params?: Params): Promise<void> {
    const response = await this.send("DELETE", path, params, { headers: this.headers() }, true);
    if (!response.ok) throw apiError(response.status, await response.text(), response.headers.get("retry-after"));
  }

  /** Multipart upload: field `path`, then field `file` (the bytes, named `filename`). */
  async upload<T = unknown>(path: string, destination: string, content: Uint8Array, filename: string, extra?: Params): Promise<T> {
    const form = new FormData();
    form.append("path", destination);
    for (const [name, value] of Object.entries(extra ?? {})) if (value !== undefined) form.append(name, value);
    form.append("file", new Blob([content]), filename);
    return this.parse<T>(await this.send("POST", path, undefined, { headers: this.headers(), body: form }, false));
  }

  /** Raw bytes of a GET (no retry). */
  async download(path: string, params?: Params): Promise<Uint8Array> {
    const response = await this.openDownload(path, params);
    return new Uint8Array(await response.arrayBuffer());
  }

  /** The body of a GET as a stream (no timeout once it answered). */
  async streamDownload(path: string, params?: Params): Promise<ReadableStream<Uint8Array>> {
    const response = await this.openDownload(path, params);
    if (!response.body) throw new SandboxError("download has no body");
    return response.body;
  }

  private async openDownload(path: string, params?: Params): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(this.url(path, params), { headers: this.headers() });
    } catch (err) {
      throw new SandboxError(`request failed: ${(err as Error).message}`);
    }
    if (!response.ok) throw new SandboxError(`Download error ${response.status}: ${await response.text()}`, response.status);
    return response;
  }

  /**
   * The `data:` JSON payloads of a server-sent event stream, in order, until the server
   * closes it or `signal` aborts. Lines that are not `data: <json>` are skipped.
   */
  async *streamSSE<T = unknown>(method: string, path: string, opts?: { params?: Params; body?: unknown; signal?: AbortSignal }): AsyncGenerator<T> {
    const init: RequestInit = { method, headers: this.headers("text/event-stream", opts?.body !== undefined) };
    if (opts?.body !== undefined) init.body = JSON.stringify(opts.body);
    if (opts?.signal) init.signal = opts.signal;
    let response: Response;
    try {
      response = await fetch(this.url(path, opts?.params), init);
    } catch (err) {
      if (opts?.signal?.aborted) return;
      throw new SandboxError(`request failed: ${(err as Error).message}`);
    }
    if (!response.ok) {
      throw apiError(response.status, await response.text(), response.headers.get("retry-after"), "Stream error");
    }
    if (!response.body) return;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        let newline: number;
        while ((newline = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, newline).replace(/\r$/, "");
          pending = pending.slice(newline + 1);
          if (!line.startsWith("data: ")) continue;
          let payload: T;
          try {
            payload = JSON.parse(line.slice(6)) as T;
          } catch {
            continue; // e.g. "[DONE]"
          }
          yield payload;
        }
      }
    } catch (err) {
      if (opts?.signal?.aborted) return;
      throw new SandboxError(`stream failed: ${(err as Error).message}`);
    } finally {
      reader.releaseLock();
      if (!opts?.signal?.aborted) await response.body.cancel().catch(() => undefined);
    }
  }
}
