"""What the SDK returns: plain dataclasses, parsed from the wire's mixed casing."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

try:
    from typing import TypedDict
except ImportError:  # pragma: no cover
    from typing_extensions import TypedDict


@dataclass
class CommandResult:
    stdout: str
    stderr: str
    exit_code: int

    @property
    def output(self) -> str:
        """Alias of stdout."""
        return self.stdout


CodeResult = CommandResult


def command_result(raw: Dict[str, Any]) -> CommandResult:
    code = raw.get("exit_code", raw.get("exitCode"))
    return CommandResult(raw.get("stdout") or "", raw.get("stderr") or "", -1 if code is None else int(code))


@dataclass
class EntryInfo:
    name: str
    path: str
    is_dir: bool
    size: int


def entry_info(raw: Dict[str, Any], path: str = "", name: str = "") -> EntryInfo:
    return EntryInfo(raw.get("name") or name, raw.get("path") or path, bool(raw.get("is_dir", False)), int(raw.get("size") or 0))


@dataclass
class SandboxInfo:
    sandbox_id: str
    template_id: str
    status: str
    started_at: str
    end_at: Optional[str] = None
    name: Optional[str] = None
    state: Optional[str] = None
    cpu_count: Optional[int] = None
    memory_mb: Optional[int] = None
    metadata: Dict[str, str] = field(default_factory=dict)


def sandbox_info(raw: Dict[str, Any]) -> SandboxInfo:
    metadata = raw.get("metadata") or {}
    return SandboxInfo(
        sandbox_id=raw.get("sandboxID") or "",
        template_id=raw.get("templateID") or raw.get("templateId") or "",
        status=raw.get("state") or "running",
        started_at=raw.get("startedAt") or "",
        end_at=raw.get("endAt"),
        name=raw.get("name") or metadata.get("name"),
        state=raw.get("state") or "unknown",
        cpu_count=raw.get("cpuCount", 0),
        memory_mb=raw.get("memoryMB", 0),
        metadata=dict(metadata),
    )


@dataclass
class ProcessInfo:
    pid: int
    command: str
    running: bool
    exit_code: int
    stdout: Optional[str] = None
    stderr: Optional[str] = None
    started_at: Optional[str] = None
    ended_at: Optional[str] = None


def process_info(raw: Dict[str, Any]) -> ProcessInfo:
    return ProcessInfo(
        pid=int(raw.get("pid") or 0),
        command=raw.get("command") or "",
        running=bool(raw.get("running", False)),
        exit_code=int(raw.get("exit_code", raw.get("exitCode", 0)) or 0),
        stdout=raw.get("stdout"),
        stderr=raw.get("stderr"),
        started_at=raw.get("started_at", raw.get("startedAt")),
        ended_at=raw.get("ended_at", raw.get("endedAt")),
    )


@dataclass
class PtyInfo:
    pid: int
    running: bool
    started_at: Optional[str] = None


@dataclass
class FilesystemEvent:
    type: str  # create | write | remove | rename
    path: str
    name: str
    timestamp: Optional[str] = None


@dataclass
class ExposureInfo:
    id: str
    sandbox_id: str
    port: int
    hostname: str
    url: str
    visibility: str
    status: str
    created_at: str
    expires_at: str
    open_path: str = "/"
    preserve_host: bool = True
    access_url: Optional[str] = None
    account_id: Optional[str] = None
    revoked_at: Optional[str] = None
    sandbox_stopped_at: Optional[str] = None
    last_accessed_at: Optional[str] = None
    created_by: Optional[str] = None


def exposure_info(raw: Dict[str, Any]) -> ExposureInfo:
    return ExposureInfo(
        id=raw.get("id") or "", sandbox_id=raw.get("sandboxId") or raw.get("sandboxID") or "",
        port=int(raw.get("port") or 0), hostname=raw.get("hostname") or "", url=raw.get("url") or "",
        visibility=raw.get("visibility") or "public", status=raw.get("status") or "pending",
        created_at=raw.get("createdAt") or "", expires_at=raw.get("expiresAt") or "",
        open_path=raw.get("openPath") or "/", preserve_host=raw.get("preserveHost", True),
        access_url=raw.get("accessUrl"), account_id=raw.get("accountId"), revoked_at=raw.get("revokedAt"),
        sandbox_stopped_at=raw.get("sandboxStoppedAt"), last_accessed_at=raw.get("lastAccessedAt"),
        created_by=raw.get("createdBy"),
    )


@dataclass
class ContextInfo:
    id: str
    language: str
    created_at: str
    cwd: str = ""


def context_info(raw: Dict[str, Any], language: str = "", id: str = "") -> ContextInfo:
    return ContextInfo(raw.get("id") or id, raw.get("language") or language, raw.get("created_at") or "", raw.get("cwd") or "")


@dataclass
class ResultItem:
    text: Optional[str] = None
    png: Optional[str] = None
    html: Optional[str] = None
    svg: Optional[str] = None
    markdown: Optional[str] = None
    json: Any = None
    latex: Optional[str] = None
    javascript: Optional[str] = None


def result_item(raw: Dict[str, Any]) -> ResultItem:
    return ResultItem(**{k: raw.get(k) for k in ("text", "png", "html", "svg", "markdown", "json", "latex", "javascript")})


@dataclass
class Logs:
    stdout: str = ""
    stderr: str = ""


@dataclass
class ExecutionResult:
    results: List[ResultItem]
    logs: Logs
    error: Optional[str] = None
    execution_count: int = 0


@dataclass
class MetricsSnapshot:
    timestamp: str
    cpu_used_pct: float
    cpu_count: int
    mem_used: int
    mem_total: int
    disk_used: int
    disk_total: int


def metrics_snapshot(raw: Dict[str, Any]) -> MetricsSnapshot:
    return MetricsSnapshot(raw.get("timestamp") or "", raw.get("cpu_used_pct") or 0, raw.get("cpu_count") or 0,
                           raw.get("mem_used") or 0, raw.get("mem_total") or 0, raw.get("disk_used") or 0,
                           raw.get("disk_total") or 0)


@dataclass
class SandboxMetrics:
    cpu_time_ms: float = 0
    memory_used_mb: float = 0
    disk_used_mb: float = 0
    network_rx_kb: float = 0
    network_tx_kb: float = 0
    command_count: int = 0
    uptime: str = ""


class NetworkPolicy(TypedDict, total=False):
    allowDomains: List[str]
    denyDomains: List[str]
    allowIPs: List[str]
    denyIPs: List[str]


@dataclass
class WebhookInfo:
    id: str
    url: str
    events: List[str]


@dataclass
class ScreenInfo:
    width: int
    height: int
    cursor_x: int
    cursor_y: int


@dataclass
class DesktopStreamInfo:
    novnc_port: int
    vnc_port: int
    ws_path: str


@dataclass
class Credential:
    """A vault entry: its name and dates, never its value."""

    key: str
    created_at: Optional[str] = None
    updated_at: Optional[str] = None


@dataclass
class TemplateInfo:
    template_id: str
    name: str
    description: str = ""
    built_in: bool = False
    status: str = ""
    cpu_count: int = 0
    memory_mb: int = 0
    aliases: List[str] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict)


def template_info(raw: Dict[str, Any]) -> TemplateInfo:
    return TemplateInfo(raw.get("templateID") or raw.get("name") or "", raw.get("name") or "", raw.get("description") or "",
                        bool(raw.get("builtIn", False)), raw.get("status") or "", raw.get("cpuCount") or 0,
                        raw.get("memoryMB") or 0, list(raw.get("aliases") or []), raw)
