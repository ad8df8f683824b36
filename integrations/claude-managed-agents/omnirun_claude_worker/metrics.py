"""The worker's counters and gauges, as Prometheus text on a loopback port."""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, Tuple

PREFIX = "omnirun_claude_worker_"
HELP = {
    "claimed_total": ("counter", "work items claimed"),
    "running": ("gauge", "sessions being served now"),
    "deferred": ("gauge", "items queued in the environment while the worker is at its cap"),
    "deferred_total": ("counter", "times the worker reached its cap and stopped claiming"),
    "at_cap": ("gauge", "1 while the worker is at its concurrency cap"),
    "failed_total": ("counter", "work items that failed"),
    "lease_lost_total": ("counter", "work items whose lease was lost (their sandbox ended)"),
    "paused_total": ("counter", "session sandboxes paused after a turn"),
    "retention_ended_total": ("counter", "paused session sandboxes ended after the retention"),
}


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Dict[str, float] = {"claimed_total": 0, "running": 0, "deferred": 0, "deferred_total": 0,
                                          "at_cap": 0, "failed_total": 0, "lease_lost_total": 0}
        self._summaries: Dict[str, Tuple[float, int, float]] = {}

    def inc(self, name: str, by: float = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + by

    add = inc

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._values[name] = value

    def get(self, name: str) -> float:
        with self._lock:
            return self._values.get(name, 0)

    def observe(self, name: str, value: float) -> None:
        with self._lock:
            total, count, _ = self._summaries.get(name, (0.0, 0, 0.0))
            self._summaries[name] = (total + value, count + 1, value)

    def render(self) -> str:
        lines = []
        with self._lock:
            for name, value in sorted(self._values.items()):
                kind, text = HELP.get(name, ("counter" if name.endswith("_total") else "gauge", name.replace("_", " ")))
                lines += [f"# HELP {PREFIX}{name} {text}", f"# TYPE {PREFIX}{name} {kind}",
                          f"{PREFIX}{name} {value:g}"]
            for name, (total, count, last) in sorted(self._summaries.items()):
                lines += [f"# TYPE {PREFIX}{name} summary", f"{PREFIX}{name}_sum {total:g}",
                          f"{PREFIX}{name}_count {count}", f"{PREFIX}{name}_last {last:g}"]
        return "\n".join(lines) + "\n"


def serve_metrics(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = metrics.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
