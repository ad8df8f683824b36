"""Settings (command-line flags over environment variables over defaults), the refusal
of `ANTHROPIC_API_KEY`, and the log filter that keeps secrets out of every log line."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

REFUSAL = ("refusing to start: ANTHROPIC_API_KEY is set. The worker needs only the environment key "
           "(ANTHROPIC_ENVIRONMENT_KEY); an organisation API key must never be where session tools run. "
           "Unset ANTHROPIC_API_KEY and start again.")


@dataclass
class Settings:
    environment_id: str = ""
    environment_key: str = field(default="", repr=False)
    base_url: Optional[str] = None
    omnirun_url: str = "http://127.0.0.1:8080"
    omnirun_key: str = field(default="", repr=False)
    template: str = "claude-agent"
    max_sessions: int = 4
    workdir: str = "/home/user/workspace"
    idle_seconds: float = 60.0
    paused_retention: float = 3600.0
    sandbox_timeout: int = 3600
    drain_seconds: float = 600.0
    pause_timeout: float = 60.0
    allow_domains: List[str] = field(default_factory=list)
    outputs_dir: Optional[str] = None
    outputs_max_bytes: int = 64 * 1024 * 1024
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    worker_label: str = "1"
    log_level: str = "info"


def _env(name: str, default: Optional[str] = None) -> Optional[str]:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m omnirun_claude_worker",
        description="Runs the tools of Claude Managed Agents sessions in OmniRun sandboxes (one per session).")
    sub = p.add_subparsers(dest="command")
    run = sub.add_parser("run", help="poll a self-hosted environment and serve its sessions (the default)")
    item = sub.add_parser("handle-item", help="serve one already-claimed work item (what spawn.sh runs for `ant`)")
    for sp in (run, item):
        sp.add_argument("--environment-id", default=_env("ANTHROPIC_ENVIRONMENT_ID"))
        sp.add_argument("--base-url", default=_env("ANTHROPIC_BASE_URL"),
                        help="the Anthropic API (default: the package's, https://api.anthropic.com)")
        sp.add_argument("--omnirun-url", default=_env("OMNIRUN_API_URL", "http://127.0.0.1:8080"))
        sp.add_argument("--template", default=_env("OMNIRUN_CLAUDE_TEMPLATE", "claude-agent"))
        sp.add_argument("--max-sessions", type=int, default=int(_env("OMNIRUN_CLAUDE_MAX_SESSIONS", "4") or 4),
                        help="concurrency cap: running sandboxes of the template; at the cap no work is claimed")
        sp.add_argument("--workdir", default=_env("OMNIRUN_CLAUDE_WORKDIR", "/home/user/workspace"))
        sp.add_argument("--idle-seconds", type=float, default=float(_env("OMNIRUN_CLAUDE_IDLE_SECONDS", "60") or 60),
                        help="how long an idle session keeps its running sandbox before it is paused")
        sp.add_argument("--paused-retention", type=float,
                        default=float(_env("OMNIRUN_CLAUDE_PAUSED_RETENTION", "3600") or 3600),
                        help="seconds a paused session's sandbox is kept for its next turn before it is ended")
        sp.add_argument("--sandbox-timeout", type=int, default=int(_env("OMNIRUN_CLAUDE_SANDBOX_TIMEOUT", "3600") or 3600))
        sp.add_argument("--drain-seconds", type=float, default=None,
                        help="on SIGTERM, how long in-flight sessions may go on (default 600; handle-item 20)")
        sp.add_argument("--allow-domain", action="append", default=None,
                        help="give sessions' sandboxes outbound access to this host only (repeatable); "
                             "default: no network at all")
        sp.add_argument("--outputs-dir", default=_env("OMNIRUN_CLAUDE_OUTPUTS_DIR"),
                        help="copy each session's working directory here (<dir>/<session id>/) after each turn")
        sp.add_argument("--outputs-max-bytes", type=int,
                        default=int(_env("OMNIRUN_CLAUDE_OUTPUTS_MAX_BYTES", str(64 * 1024 * 1024)) or 0))
        sp.add_argument("--metrics-port", type=int, default=int(_env("OMNIRUN_CLAUDE_METRICS_PORT", "0") or 0),
                        help="serve Prometheus metrics on 127.0.0.1:PORT/metrics (0: off)")
        sp.add_argument("--log-level", default=_env("OMNIRUN_CLAUDE_LOG_LEVEL", "info"))
    item.add_argument("--work-id", default=_env("ANTHROPIC_WORK_ID"))
    item.add_argument("--session-id", default=_env("ANTHROPIC_SESSION_ID"))
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    domains = args.allow_domain
    if domains is None:
        domains = [d for d in (_env("OMNIRUN_CLAUDE_ALLOW_DOMAINS", "") or "").split(",") if d.strip()]
    drain = args.drain_seconds
    if drain is None:
        drain = float(_env("OMNIRUN_CLAUDE_DRAIN_SECONDS", "20" if args.command == "handle-item" else "600") or 600)
    return Settings(
        environment_id=args.environment_id or "",
        environment_key=_env("ANTHROPIC_ENVIRONMENT_KEY", "") or "",
        base_url=args.base_url,
        omnirun_url=args.omnirun_url,
        omnirun_key=_env("OMNIRUN_API_KEY", "") or "",
        template=args.template,
        max_sessions=max(1, args.max_sessions),
        workdir=args.workdir,
        idle_seconds=args.idle_seconds,
        paused_retention=args.paused_retention,
        sandbox_timeout=args.sandbox_timeout,
        drain_seconds=drain,
        allow_domains=[d.strip() for d in domains if d.strip()],
        outputs_dir=args.outputs_dir,
        outputs_max_bytes=args.outputs_max_bytes,
        metrics_port=args.metrics_port,
        log_level=args.log_level,
    )


def refuse_api_key(environ: Optional[dict] = None) -> None:
    env = os.environ if environ is None else environ
    if env.get("ANTHROPIC_API_KEY"):
        sys.stderr.write(REFUSAL + "\n")
        sys.exit(2)


class RedactSecrets(logging.Filter):
    """Replaces every known secret (and its base64-decoded token) in a record by [redacted].
    Attached to the handler, so it also covers the `anthropic` and `httpx` loggers."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: List[str] = []

    def add(self, *values: Optional[str]) -> None:
        for value in values:
            if value and len(value) >= 6 and value not in self._secrets:
                self._secrets.append(value)
        self._secrets.sort(key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not drop the line
            message = str(record.msg)
        scrubbed = self.scrub(message)
        if record.exc_info and record.exc_info[1] is not None:
            import traceback
            scrubbed += "\n" + self.scrub("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = scrubbed, None
        return True


REDACT = RedactSecrets()


def setup_logging(level: str, secrets: Sequence[Optional[str]]) -> None:
    REDACT.add(*secrets)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(REDACT)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    if root.level > logging.DEBUG:
        for noisy in ("httpx", "httpx2", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
