"""`python3 -m omnirun_claude_worker [run|handle-item] ...` (see the README)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from typing import Optional

from .config import parser, refuse_api_key, settings_from, setup_logging

WORK_ITEM_LIMIT = 1024 * 1024


def _read_work_item() -> dict:
    """The work item JSON that `ant beta:worker poll --on-work` writes on stdin (bounded)."""
    if sys.stdin is None or sys.stdin.isatty():
        return {}
    data = sys.stdin.buffer.read(WORK_ITEM_LIMIT + 1)
    if len(data) > WORK_ITEM_LIMIT:
        sys.stderr.write("the work item on stdin is larger than 1 MiB; ignored\n")
        return {}
    try:
        item = json.loads(data or b"{}")
    except ValueError:
        return {}
    return item if isinstance(item, dict) else {}


def main(argv: Optional[list] = None) -> int:
    refuse_api_key()
    args = parser().parse_args(argv)
    if args.command is None:
        args = parser().parse_args(["run", *(argv if argv is not None else sys.argv[1:])])
    settings = settings_from(args)
    item: dict = {}
    secret: Optional[str] = None
    if args.command == "handle-item":
        item = _read_work_item()
        secret = item.get("secret") if isinstance(item.get("secret"), str) else None
        secret = secret or os.environ.get("ANTHROPIC_WORK_SECRET") or None
        settings.pause_timeout = min(settings.pause_timeout, 6.0)
    setup_logging(settings.log_level, [settings.environment_key, settings.omnirun_key, secret])

    from .worker import Worker, sessions_token
    from .config import REDACT
    REDACT.add(sessions_token(secret))
    if item:
        logging.getLogger("omnirun_claude_worker").debug("work item from stdin: %s", item)  # redacted

    if args.command == "handle-item":
        data = item.get("data") if isinstance(item.get("data"), dict) else {}
        work_id = args.work_id or str(item.get("id") or "")
        session_id = args.session_id or str(data.get("id") or "")
        if not settings.environment_id:
            settings.environment_id = str(item.get("environment_id") or "")
        worker = Worker(settings, mode="item")
        return asyncio.run(worker.handle_one(work_id=work_id, session_id=session_id, secret=secret))
    return asyncio.run(Worker(settings, mode="run").run())


if __name__ == "__main__":
    sys.exit(main())
