"""Account-level helpers beyond the sandbox: the vault and the template catalogue."""
from __future__ import annotations

from typing import List, Optional
from urllib.parse import quote

from ._config import resolve_config
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call
from .models import Credential, TemplateInfo, template_info


def _credentials(data: object) -> List[Credential]:
    # `{keys, credentials: [...]}`; servers before it answered the bare list.
    items = data if isinstance(data, list) else data.get("credentials") if isinstance(data, dict) else []
    if not isinstance(items, list):
        items = []
    return [Credential(c.get("key") or "", c.get("createdAt"), c.get("updatedAt")) for c in items]


class Vault:
    """Credentials injected into sandboxes created with `vault_inject=True`. Values are
    write-only: `list()` gives names and dates."""

    def __init__(self, *, api_key: Optional[str] = None, api_url: Optional[str] = None) -> None:
        self._client = HTTPClient(resolve_config(api_url, api_key))

    def set(self, key: str, value: str) -> None:
        self._client.call(Call("POST", "/vault/credentials", json={"key": key, "value": value}, kind="ignore"))

    def list(self) -> List[Credential]:
        return _credentials(self._client.call(Call("GET", "/vault/credentials")))

    def delete(self, key: str) -> None:
        self._client.call(Call("DELETE", f"/vault/credentials/{quote(key, safe='')}", kind="ignore"))


class AsyncVault:
    def __init__(self, *, api_key: Optional[str] = None, api_url: Optional[str] = None) -> None:
        self._client = AsyncHTTPClient(resolve_config(api_url, api_key))

    async def set(self, key: str, value: str) -> None:
        await self._client.call(Call("POST", "/vault/credentials", json={"key": key, "value": value}, kind="ignore"))

    async def list(self) -> List[Credential]:
        return _credentials(await self._client.call(Call("GET", "/vault/credentials")))

    async def delete(self, key: str) -> None:
        await self._client.call(Call("DELETE", f"/vault/credentials/{quote(key, safe='')}", kind="ignore"))


class Templates:
    """The templates sandboxes can be created from (built-in and the account's own)."""

    def __init__(self, *, api_key: Optional[str] = None, api_url: Optional[str] = None) -> None:
        self._client = HTTPClient(resolve_config(api_url, api_key))

    def list(self) -> List[TemplateInfo]:
        data = self._client.call(Call("GET", "/templates"))
        return [template_info(t) for t in data] if isinstance(data, list) else []


class AsyncTemplates:
    def __init__(self, *, api_key: Optional[str] = None, api_url: Optional[str] = None) -> None:
        self._client = AsyncHTTPClient(resolve_config(api_url, api_key))

    async def list(self) -> List[TemplateInfo]:
        data = await self._client.call(Call("GET", "/templates"))
        return [template_info(t) for t in data] if isinstance(data, list) else []
