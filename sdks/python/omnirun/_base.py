"""The glue between the operation generators and the two clients."""
from __future__ import annotations

from typing import Any, TypeVar

from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Ops, adrive, drive

T = TypeVar("T")


class SyncPart:
    def __init__(self, client: HTTPClient) -> None:
        self._client = client

    def _do(self, ops: "Ops[T]") -> T:
        return drive(ops, self._client.execute)


class AsyncPart:
    def __init__(self, client: AsyncHTTPClient) -> None:
        self._client = client

    async def _do(self, ops: "Ops[T]") -> T:
        return await adrive(ops, self._client.execute)


def compact(**values: Any) -> dict:
    """The keyword arguments that are set (the wire leaves unset keys out)."""
    return {k: v for k, v in values.items() if v is not None}
