/** Connection settings: options first, then the environment, then the defaults. */
export interface ConnectionConfig {
  apiUrl: string;
  apiKey: string;
  /** Milliseconds before a (non-streaming) request is aborted. */
  requestTimeout: number;
}

export const DEFAULT_API_URL = "https://api.omnirun.io";
export const DEFAULT_PREVIEW_DOMAIN = "omnirun-preview.dev";

/** An environment variable, when the runtime has `process.env` (Node, Deno, Bun). */
export function env(name: string): string | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return proc?.env?.[name];
}

export function resolveConfig(opts?: { apiUrl?: string; apiKey?: string; requestTimeout?: number }): ConnectionConfig {
  return {
    apiUrl: opts?.apiUrl || env("OMNIRUN_API_URL") || DEFAULT_API_URL,
    apiKey: opts?.apiKey || env("OMNIRUN_API_KEY") || "",
    requestTimeout: opts?.requestTimeout ?? 60_000,
  };
}
