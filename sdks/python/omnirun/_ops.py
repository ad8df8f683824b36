"""Every API method is written once, as a generator of operations (HTTP calls, sleeps,
streams); `drive` runs one with the blocking client, `adrive` with the async one. So the
sync `Sandbox` and the async `AsyncSandbox` cannot drift apart."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Generator, Optional, TypeVar, Union

T = TypeVar("T")

NO_BODY = object()


@dataclass
class Call:
    """One HTTP request. `kind`: "json" (the parsed body; text when not JSON; None for
    204), "headers" (a pair: the parsed body and the response headers), "bytes" (the raw
    body; download errors), "ignore" (the body is not read)."""

    method: str
    path: str
    params: Optional[Dict[str, str]] = None
    json: Any = NO_BODY
    files: Optional[Dict[str, Any]] = None
    data: Optional[Dict[str, str]] = None
    kind: str = "json"

    @property
    def idempotent(self) -> bool:
        return self.method in ("GET", "DELETE", "PUT", "HEAD")


@dataclass
class Sleep:
    seconds: float


@dataclass
class Stream:
    """An SSE request; `on_event` gets each `data:` JSON payload and returns True to stop."""

    method: str
    path: str
    on_event: Callable[[Any], bool]
    params: Optional[Dict[str, str]] = None
    json: Any = NO_BODY


Op = Union[Call, Sleep, Stream]
Ops = Generator[Op, Any, T]


def drive(ops: "Ops[T]", execute: Callable[[Op], Any]) -> T:
    value: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            op = ops.throw(error) if error is not None else ops.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            value = execute(op)
        except Exception as exc:  # handed to the generator, which may catch it
            error = exc


async def adrive(ops: "Ops[T]", execute: Callable[[Op], Any]) -> T:
    value: Any = None
    error: Optional[BaseException] = None
    while True:
        try:
            op = ops.throw(error) if error is not None else ops.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        error = None
        try:
            value = await execute(op)
        except Exception as exc:
            error = exc


@dataclass
class Collected:
    """Output gathered from a command stream."""

    stdout: list = field(default_factory=list)
    stderr: list = field(default_factory=list)
    exit_code: int = 0
