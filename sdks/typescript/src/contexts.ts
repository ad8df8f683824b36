import type { HTTPClient } from "./client.js";
import { asArray } from "./models.js";

export interface ContextInfo {
  id: string;
  language: string;
  createdAt: string;
  cwd?: string;
}

export interface ResultItem {
  text?: string;
  png?: string;
  html?: string;
  svg?: string;
  markdown?: string;
  json?: unknown;
  latex?: string;
  javascript?: string;
}

export interface LogOutput {
  stdout: string;
  stderr: string;
}

export interface ExecutionResult {
  results: ResultItem[];
  logs: LogOutput;
  error?: string;
  executionCount?: number;
}

export interface ExecuteOptions {
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  onResult?: (result: ResultItem) => void;
}

type Raw = Record<string, any>;

const KINDS = ["text", "png", "html", "svg", "markdown", "json", "latex", "javascript"] as const;

function toResult(raw: Raw): ResultItem {
  const item: Record<string, unknown> = {};
  for (const kind of KINDS) if (raw[kind] !== undefined && raw[kind] !== null) item[kind] = raw[kind];
  return item as ResultItem;
}

function toContext(raw: Raw, fallback: Partial<ContextInfo> = {}): ContextInfo {
  return { id: raw.id ?? fallback.id ?? "", language: raw.language ?? fallback.language ?? "", createdAt: raw.created_at ?? "", cwd: raw.cwd ?? "" };
}

/** `sandbox.contexts`: persistent interpreters whose state survives between executions. */
export class Contexts {
  private readonly base: string;
  private readonly client: HTTPClient;

  constructor(sandboxId: string, client: HTTPClient) {
    this.base = `/sandboxes/${sandboxId}/contexts`;
    this.client = client;
  }

  async create(language: string, opts?: { cwd?: string }): Promise<ContextInfo> {
    const body: Record<string, unknown> = { language };
    if (opts?.cwd) body.cwd = opts.cwd;
    return toContext((await this.client.post<Raw>(this.base, body)) ?? {}, { language });
  }

  async list(): Promise<ContextInfo[]> {
    return asArray(await this.client.get(this.base)).map((c) => toContext(c));
  }

  async execute(contextId: string, code: string, opts?: ExecuteOptions): Promise<ExecutionResult> {
    if (opts?.onStdout || opts?.onStderr || opts?.onResult) return this.streamed(contextId, code, opts);
    const data = (await this.client.post<Raw>(`${this.base}/${contextId}/execute`, { code })) ?? {};
    return {
      results: asArray(data.results).map(toResult),
      logs: { stdout: data.logs?.stdout ?? "", stderr: data.logs?.stderr ?? "" },
      error: data.error ?? undefined,
      executionCount: data.execution_count ?? 0,
    };
  }

  private async streamed(contextId: string, code: string, opts: ExecuteOptions): Promise<ExecutionResult> {
    const stdout: string[] = [];
    const stderr: string[] = [];
    const results: ResultItem[] = [];
    let executionCount = 0;
    for await (const event of this.client.streamSSE<Raw>("POST", `${this.base}/${contextId}/stream-execute`, { body: { code } })) {
      if (event.type === "stdout") {
        stdout.push(event.data ?? "");
        opts.onStdout?.(event.data ?? "");
      } else if (event.type === "stderr") {
        stderr.push(event.data ?? "");
        opts.onStderr?.(event.data ?? "");
      } else if (event.type === "result") {
        const item = toResult(event.data ?? {});
        results.push(item);
        opts.onResult?.(item);
      } else if (event.type === "done") {
        executionCount = event.execution_count ?? 0;
      }
    }
    return { results, logs: { stdout: stdout.join("\n"), stderr: stderr.join("\n") }, executionCount };
  }

  async restart(contextId: string): Promise<ContextInfo> {
    return toContext((await this.client.post<Raw>(`${this.base}/${contextId}/restart`)) ?? {}, { id: contextId });
  }

  async delete(contextId: string): Promise<void> {
    await this.client.delete(`${this.base}/${contextId}`);
  }
}
