export { Sandbox, SandboxPaginator } from "./sandbox.js";
export { Commands, CommandHandle } from "./commands.js";
export { Filesystem, WatchHandle } from "./filesystem.js";
export type { FileReadOptions, FileWriteOptions, FileListOptions } from "./filesystem.js";
export { Pty, PtySession } from "./pty.js";
export { Contexts } from "./contexts.js";
export type { ContextInfo, ResultItem, LogOutput, ExecutionResult, ExecuteOptions } from "./contexts.js";
export { Desktop } from "./desktop.js";
export type { ScreenInfo, DesktopStreamInfo, MouseOptions, KeyboardOptions, ScreenshotOptions, MouseAction, ScrollDirection, KeyboardAction } from "./desktop.js";
export { Exposures } from "./exposures.js";
export type { ExposureInfo, ExposureStatus, ExposureVisibility, CreateExposureOptions, RefreshExposureOptions } from "./exposures.js";
export { Production, Webhooks } from "./production.js";
export type { NetworkPolicy, SandboxMetrics, MetricsSnapshot, WebhookInfo } from "./production.js";
export { LLM } from "./llm.js";
export type { ChatMessage, ChatCompletionRequest, ChatCompletionResponse, ChatCompletionChoice, ChatCompletionUsage, LLMUsage, LLMModel } from "./llm.js";
export { Vault, Templates } from "./account.js";
export type { Credential, TemplateInfo } from "./account.js";
export { HTTPClient } from "./client.js";
export { resolveConfig } from "./config.js";
export type { ConnectionConfig } from "./config.js";
export { generateE2EEKeyPair, importE2EEPublicKey, deriveE2EESharedKey, encryptE2EEJSON, decryptE2EEJSON } from "./e2ee.js";
export type { E2EEAlgorithm, E2EEKeyPairMaterial, E2EECreateOptions, E2EESessionInfo, EncryptedEnvelope } from "./e2ee.js";
export { commandResult as makeCommandResult } from "./models.js";
export { SandboxError, SandboxNotFoundError, CommandExitException, StreamError, TimeoutError, RateLimitError, NotAvailableError } from "./errors.js";
export type {
  CommandResult,
  CodeResult,
  EntryInfo,
  SandboxInfo,
  FullSandboxInfo,
  ProcessInfo,
  PtyInfo,
  WriteEntry,
  FilesystemEvent,
  StreamEvent,
  RunCommandOptions,
  CreateSandboxOptions,
  ListSandboxOptions,
} from "./models.js";
