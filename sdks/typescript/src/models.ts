import type { E2EECreateOptions } from "./e2ee.js";
import type { NetworkPolicy } from "./production.js";

/** Output of a command. `output` is an alias of `stdout`. */
export interface CommandResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  readonly output?: string;
}

export type CodeResult = CommandResult;

export interface EntryInfo {
  name: string;
  path: string;
  isDir: boolean;
  size: number;
}

export interface SandboxInfo {
  sandboxId: string;
  templateId: string;
  status: string;
  startedAt: string;
  endAt?: string;
  name?: string;
  state?: string;
  cpuCount?: number;
  memoryMB?: number;
  metadata?: Record<string, string>;
}

export interface FullSandboxInfo extends SandboxInfo {
  state: string;
  cpuCount: number;
  memoryMB: number;
}

export interface ProcessInfo {
  pid: number;
  command: string;
  running: boolean;
  exitCode: number;
  stdout?: string;
  stderr?: string;
  startedAt?: string;
  endedAt?: string;
}

export interface PtyInfo {
  pid: number;
  running: boolean;
  startedAt?: string;
}

export interface WriteEntry {
  path: string;
  content: string;
}

export interface FilesystemEvent {
  type: "create" | "write" | "remove" | "rename";
  path: string;
  name: string;
  timestamp?: string;
}

export interface StreamEvent {
  type: "stdout" | "stderr" | "exit";
  data?: string;
  exit_code?: number;
  timestamp?: string;
}

export interface RunCommandOptions {
  cwd?: string;
  /** Seconds (default 60). */
  timeout?: number;
  background?: boolean;
  envs?: Record<string, string>;
  user?: string;
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
}

export interface CreateSandboxOptions {
  /** Seconds until the sandbox is killed (default 300); 0 = permanent. */
  timeout?: number;
  apiKey?: string;
  apiUrl?: string;
  /** Milliseconds (default 60000). */
  requestTimeout?: number;
  internet?: boolean;
  memory?: number;
  envVars?: Record<string, string>;
  metadata?: Record<string, string>;
  /** Seconds between heartbeats that reset the timeout, until `kill()`. */
  keepAlive?: number;
  autoPause?: boolean;
  network?: NetworkPolicy;
  secure?: boolean;
  maskRequestHost?: string;
  vaultInject?: boolean;
  e2ee?: boolean | E2EECreateOptions;
  previewDomain?: string;
}

export interface ListSandboxOptions {
  apiKey?: string;
  apiUrl?: string;
  limit?: number;
  nextToken?: string;
  state?: string;
  metadata?: Record<string, string>;
}

export function commandResult(raw: { stdout?: string; stderr?: string; exit_code?: number; exitCode?: number }): CommandResult {
  const result = {
    stdout: raw.stdout ?? "",
    stderr: raw.stderr ?? "",
    exitCode: raw.exit_code ?? raw.exitCode ?? -1,
  };
  return Object.defineProperty(result, "output", { get: () => result.stdout, enumerable: false }) as CommandResult;
}

// The wire mixes camelCase and snake_case; these read both where the protocol allows it.
type Raw = Record<string, any>;

export function toEntry(raw: Raw, path = "", name = ""): EntryInfo {
  return { name: raw.name ?? name, path: raw.path ?? path, isDir: raw.is_dir ?? false, size: raw.size ?? 0 };
}

export function toSandboxInfo(raw: Raw): FullSandboxInfo {
  return {
    sandboxId: raw.sandboxID ?? "",
    templateId: raw.templateID ?? raw.templateId ?? "",
    status: raw.state ?? "running",
    startedAt: raw.startedAt ?? "",
    endAt: raw.endAt,
    name: raw.name ?? raw.metadata?.name,
    state: raw.state ?? "unknown",
    cpuCount: raw.cpuCount ?? 0,
    memoryMB: raw.memoryMB ?? 0,
    metadata: raw.metadata ?? {},
  };
}

export function toProcessInfo(raw: Raw): ProcessInfo {
  return {
    pid: raw.pid ?? 0,
    command: raw.command ?? "",
    running: raw.running ?? false,
    exitCode: raw.exit_code ?? raw.exitCode ?? 0,
    stdout: raw.stdout,
    stderr: raw.stderr,
    startedAt: raw.started_at ?? raw.startedAt,
    endedAt: raw.ended_at ?? raw.endedAt,
  };
}

export function asArray(data: unknown): Raw[] {
  return Array.isArray(data) ? (data as Raw[]) : [];
}
