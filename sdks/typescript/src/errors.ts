/** Every failure the SDK raises is a `SandboxError`; `status` is the HTTP status when there is one. */
export class SandboxError extends Error {
  status?: number;
  /** The server's error code (`{"error": "<code>"}`), when it sent one. */
  code?: string;

  constructor(message: string, status?: number, code?: string) {
    super(message);
    this.name = "SandboxError";
    this.status = status;
    this.code = code;
  }
}

/** The sandbox does not exist (or was killed). */
export class SandboxNotFoundError extends SandboxError {
  readonly sandboxId: string;

  constructor(sandboxId: string) {
    super(`Sandbox ${sandboxId} not found`, 404, "not_found");
    this.name = "SandboxNotFoundError";
    this.sandboxId = sandboxId;
  }
}

/** A command ended with a non-zero exit code. */
export class CommandExitException extends SandboxError {
  stdout: string;
  stderr: string;
  exitCode: number;

  constructor(stdout: string, stderr: string, exitCode: number) {
    super(`Command exited with code ${exitCode}: ${stderr || stdout}`);
    this.name = "CommandExitException";
    this.stdout = stdout;
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

/** A server-sent event stream could not be opened. */
export class StreamError extends SandboxError {
  constructor(message: string, status?: number, code?: string) {
    super(message, status, code);
    this.name = "StreamError";
  }
}

/** A wait or a request took longer than allowed. */
export class TimeoutError extends SandboxError {
  constructor(message: string) {
    super(message);
    this.name = "TimeoutError";
  }
}

/** 429: a limit was reached (concurrent sandboxes, LLM requests per minute, ...). */
export class RateLimitError extends SandboxError {
  /** The server's Retry-After, in seconds, when given. */
  retryAfter?: number;

  constructor(message: string, code?: string, retryAfter?: number) {
    super(message, 429, code);
    this.name = "RateLimitError";
    this.retryAfter = retryAfter;
  }
}

/** 501: the server does not offer this feature (yet). */
export class NotAvailableError extends SandboxError {
  constructor(message: string, code?: string) {
    super(message, 501, code);
    this.name = "NotAvailableError";
  }
}

/**
 * The message and code of an error body: empty -> "request failed"; a JSON string -> it;
 * a JSON object -> its `message`, else its `error`, else the raw text; otherwise the text.
 */
export function errorMessage(text: string): { message: string; code?: string } {
  if (!text) return { message: "request failed" };
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return { message: text };
  }
  if (typeof body === "string") return { message: body };
  if (body && typeof body === "object") {
    const record = body as Record<string, unknown>;
    const code = typeof record.error === "string" ? record.error : undefined;
    if (typeof record.message === "string") return { message: record.message, code };
    if (code !== undefined) return { message: code, code };
  }
  return { message: text };
}

/** The typed error for a non-2xx answer. */
export function apiError(status: number, text: string, retryAfter: string | null, prefix = "API error"): SandboxError {
  const { message, code } = errorMessage(text);
  const full = `${prefix} ${status}: ${message}`;
  if (status === 429) {
    const seconds = retryAfter ? Number(retryAfter) : NaN;
    return new RateLimitError(full, code, Number.isFinite(seconds) ? seconds : undefined);
  }
  if (status === 501) return new NotAvailableError(full, code);
  if (prefix === "Stream error") return new StreamError(full, status, code);
  return new SandboxError(full, status, code);
}
