"""`LLM`: the OpenAI-compatible LLM proxy (chat, streaming, models, spend)."""
from __future__ import annotations

from typing import Any, AsyncIterator, Dict, Iterator, List, Optional

from ._config import resolve_config
from ._http import AsyncHTTPClient, HTTPClient
from ._ops import Call


def _request(model: str, messages: List[Dict[str, str]], stream: bool, extra: Dict[str, Any]) -> Dict[str, Any]:
    return {"model": model, "messages": messages, **{k: v for k, v in extra.items() if v is not None}, "stream": stream}


def _delta(chunk: Any) -> str:
    try:
        return chunk["choices"][0]["delta"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        return ""


class LLM:
    """`LLM().chat_completion(model=..., messages=[...])` returns the OpenAI-shaped answer
    (a dict); `stream_chat_completion` yields the text of each chunk."""

    def __init__(self, *, api_key: Optional[str] = None, api_url: Optional[str] = None,
                 request_timeout: Optional[float] = None) -> None:
        self._client = HTTPClient(resolve_config(api_url, api_key, request_timeout))

    def chat_completion(self, *, model: str, messages: List[Dict[str, str]], max_tokens: Optional[int] = None,
                        temperature: Optional[float] = None, **extra: Any) -> Dict[str, Any]:
        body = _request(model, messages, False, {"max_tokens": max_tokens, "temperature": temperature, **extra})
        return self._client.call(Call("POST", "/llm/v1/chat/completions", json=body))  # type: ignore[no-any-return]

    def stream_chat_completion(self, *, model: str, messages: List[Dict[str, str]], max_tokens: Optional[int] = None,
                               temperature: Optional[float] = None, **extra: Any) -> Iterator[str]:
        body = _request(model, messages, True, {"max_tokens": max_tokens, "temperature": temperature, **extra})
        for chunk in self._client.iter_sse("POST", "/llm/v1/chat/completions", body=body):
            text = _delta(chunk)
            if text:
                yield text

    def list_models(self) -> List[Dict[str, Any]]:
        data = self._client.call(Call("GET", "/llm/v1/models"))
        return list((data or {}).get("data") or []) if isinstance(data, dict) else []

    def get_usage(self) -> Dict[str, Any]:
        return self._client.call(Call("GET", "/llm/v1/usage"))  # type: ignore[no-any-return]

    def close(self) -> None:
        self._client.close()


class AsyncLLM:
    def __init__(self, *, api_key: Optional[str] = None, api_url: Optional[str] = None,
                 request_timeout: Optional[float] = None) -> None:
        self._client = AsyncHTTPClient(resolve_config(api_url, api_key, request_timeout))

    async def chat_completion(self, *, model: str, messages: List[Dict[str, str]], max_tokens: Optional[int] = None,
                              temperature: Optional[float] = None, **extra: Any) -> Dict[str, Any]:
        body = _request(model, messages, False, {"max_tokens": max_tokens, "temperature": temperature, **extra})
        return await self._client.call(Call("POST", "/llm/v1/chat/completions", json=body))  # type: ignore[no-any-return]

    async def stream_chat_completion(self, *, model: str, messages: List[Dict[str, str]], max_tokens: Optional[int] = None,
                                     temperature: Optional[float] = None, **extra: Any) -> AsyncIterator[str]:
        body = _request(model, messages, True, {"max_tokens": max_tokens, "temperature": temperature, **extra})
        async for chunk in self._client.iter_sse("POST", "/llm/v1/chat/completions", body=body):
            text = _delta(chunk)
            if text:
                yield text

    async def list_models(self) -> List[Dict[str, Any]]:
        data = await self._client.call(Call("GET", "/llm/v1/models"))
        return list((data or {}).get("data") or []) if isinstance(data, dict) else []

    async def get_usage(self) -> Dict[str, Any]:
        return await self._client.call(Call("GET", "/llm/v1/usage"))  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        await self._client.aclose()
