"""OmniRun Python SDK: isolated microVM sandboxes for AI agents.

    from omnirun import Sandbox
    sandbox = Sandbox.create("playground", timeout=300)
    print(sandbox.commands.run("echo hello").stdout)
    sandbox.kill()
"""
from .account import AsyncTemplates, AsyncVault, Templates, Vault
from .commands import AsyncCommandHandle, AsyncCommands, CommandHandle, Commands
from .contexts import AsyncContexts, Contexts
from .desktop import AsyncDesktop, Desktop
from .errors import (CommandExitException, NotAvailableError, RateLimitError, SandboxError, SandboxNotFoundError,
                     SandboxTimeoutError, StreamError, TimeoutError)
from .exposures import AsyncExposures, Exposures
from .files import AsyncFilesystem, AsyncWatchHandle, Filesystem, WatchHandle
from .llm import LLM, AsyncLLM
from .models import (CodeResult, CommandResult, ContextInfo, Credential, DesktopStreamInfo, EntryInfo, ExecutionResult,
                     ExposureInfo, FilesystemEvent, Logs, MetricsSnapshot, NetworkPolicy, ProcessInfo, PtyInfo,
                     ResultItem, SandboxInfo, SandboxMetrics, ScreenInfo, TemplateInfo, WebhookInfo)
from .production import AsyncProduction, AsyncWebhooks, Production, Webhooks
from .pty import AsyncPty, AsyncPtySession, Pty, PtySession
from .sandbox import AsyncSandbox, AsyncSandboxPaginator, Sandbox, SandboxPaginator

__version__ = "0.6.0"

__all__ = [
    "Sandbox", "AsyncSandbox", "SandboxPaginator", "AsyncSandboxPaginator",
    "Commands", "AsyncCommands", "CommandHandle", "AsyncCommandHandle",
    "Filesystem", "AsyncFilesystem", "WatchHandle", "AsyncWatchHandle",
    "Pty", "AsyncPty", "PtySession", "AsyncPtySession",
    "Contexts", "AsyncContexts", "Desktop", "AsyncDesktop", "Exposures", "AsyncExposures",
    "Production", "AsyncProduction", "Webhooks", "AsyncWebhooks", "LLM", "AsyncLLM",
    "Vault", "AsyncVault", "Templates", "AsyncTemplates",
    "SandboxError", "SandboxNotFoundError", "CommandExitException", "StreamError", "TimeoutError",
    "SandboxTimeoutError", "RateLimitError", "NotAvailableError",
    "CommandResult", "CodeResult", "EntryInfo", "SandboxInfo", "ProcessInfo", "PtyInfo", "FilesystemEvent",
    "ExposureInfo", "ContextInfo", "ResultItem", "Logs", "ExecutionResult", "MetricsSnapshot", "SandboxMetrics",
    "NetworkPolicy", "WebhookInfo", "ScreenInfo", "DesktopStreamInfo", "Credential", "TemplateInfo",
]
