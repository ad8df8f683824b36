"""`sandbox.production`: pause/resume, metrics and the network policy; and account
webhooks (`sandbox.webhooks`, `Webhooks`)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from ._base import AsyncPart, SyncPart
from ._config import resolve_config
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call, Ops
from .models import MetricsSnapshot, NetworkPolicy, SandboxMetrics, WebhookInfo, metrics_snapshot


class _ProductionOps:
    def __init__(self, sandbox_id: str) -> None:
        self.base = f"/sandboxes/{sandbox_id}"

    def status(self, action: str) -> Ops[Dict[str, Any]]:
        data = yield Call("POST", f"{self.base}/{action}")
        return data if isinstance(data, dict) else {"status": ""}

    def metrics(self) -> Ops[SandboxMetrics]:
        data = yield Call("GET", self.base + "/metrics")
        if isinstance(data, list):
            last = data[-1] if data else {}
            return SandboxMetrics(memory_used_mb=round((last.get("mem_used") or 0) / 1048576),
                                  disk_used_mb=round((last.get("disk_used") or 0) / 1048576), uptime=last.get("timestamp") or "")
        d = data if isinstance(data, dict) else {}
        return SandboxMetrics(d.get("cpu_time_ms") or 0, d.get("memory_used_mb") or 0, d.get("disk_used_mb") or 0,
                              d.get("network_rx_kb") or 0, d.get("network_tx_kb") or 0, d.get("command_count") or 0,
                              str(d.get("uptime") or ""))

    def snapshots(self) -> Ops[List[MetricsSnapshot]]:
        data = yield Call("GET", self.base + "/metrics")
        return [metrics_snapshot(m) for m in data] if isinstance(data, list) else []

    def network_policy(self, policy: NetworkPolicy) -> Ops[None]:
        body = {k: policy[k] for k in ("allowDomains", "denyDomains", "allowIPs", "denyIPs") if k in policy}  # type: ignore[literal-required]
        yield Call("POST", self.base + "/network-policy", json=body, kind="ignore")


class Production(SyncPart):
    def __init__(self, sandbox_id: str, client: HTTPClient) -> None:
        super().__init__(client)
        self._ops = _ProductionOps(sandbox_id)

    def pause(self) -> Dict[str, Any]:
        return self._do(self._ops.status("pause"))

    def resume(self) -> Dict[str, Any]:
        return self._do(self._ops.status("resume"))

    def metrics(self) -> SandboxMetrics:
        return self._do(self._ops.metrics())

    def metrics_snapshots(self) -> List[MetricsSnapshot]:
        return self._do(self._ops.snapshots())

    def set_network_policy(self, policy: NetworkPolicy) -> None:
        self._do(self._ops.network_policy(policy))


class AsyncProduction(AsyncPart):
    def __init__(self, sandbox_id: str, client: AsyncHTTPClient) -> None:
        super().__init__(client)
        self._ops = _ProductionOps(sandbox_id)

    async def pause(self) -> Dict[str, Any]:
        return await self._do(self._ops.status("pause"))

    async def resume(self) -> Dict[str, Any]:
        return await self._do(self._ops.status("resume"))

    async def metrics(self) -> SandboxMetrics:
        return await self._do(self._ops.metrics())

    async def metrics_snapshots(self) -> List[MetricsSnapshot]:
        return await self._do(self._ops.snapshots())

    async def set_network_policy(self, policy: NetworkPolicy) -> None:
        await self._do(self._ops.network_policy(policy))


class _WebhookOps:
    def create(self, url: str, events: List[str]) -> Ops[Dict[str, Any]]:
        data = yield Call("POST", "/webhooks", json={"url": url, "events": list(events)})
        return data if isinstance(data, dict) else {}

    def list(self) -> Ops[List[WebhookInfo]]:
        data = yield Call("GET", "/webhooks")
        items = data if isinstance(data, list) else []
        return [WebhookInfo(w.get("id") or "", w.get("url") or "", list(w.get("events") or [])) for w in items]

    def delete(self, webhook_id: str) -> Ops[None]:
        yield Call("DELETE", f"/webhooks/{webhook_id}", kind="ignore")


class Webhooks(SyncPart):
    """Account webhooks: `Webhooks(api_key=...)` or `sandbox.webhooks`."""

    def __init__(self, client: Optional[HTTPClient] = None, *, api_key: Optional[str] = None, api_url: Optional[str] = None) -> None:
        super().__init__(client or HTTPClient(resolve_config(api_url, api_key)))
        self._ops = _WebhookOps()

    def create(self, url: str, events: List[str]) -> Dict[str, Any]:
        return self._do(self._ops.create(url, events))

    register = create

    def list(self) -> List[WebhookInfo]:
        return self._do(self._ops.list())

    def delete(self, webhook_id: str) -> None:
        self._do(self._ops.delete(webhook_id))


class AsyncWebhooks(AsyncPart):
    def __init__(self, client: Optional[AsyncHTTPClient] = None, *, api_key: Optional[str] = None,
                 api_url: Optional[str] = None) -> None:
        super().__init__(client or AsyncHTTPClient(resolve_config(api_url, api_key)))
        self._ops = _WebhookOps()

    async def create(self, url: str, events: List[str]) -> Dict[str, Any]:
        return await self._do(self._ops.create(url, events))

    register = create

    async def list(self) -> List[WebhookInfo]:
        return await self._do(self._ops.list())

    async def delete(self, webhook_id: str) -> None:
        await self._do(self._ops.delete(webhook_id))
