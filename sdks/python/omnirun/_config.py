"""Connection settings: arguments first, then the environment, then defaults."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

DEFAULT_API_URL = "https://api.omnirun.io"
DEFAULT_PREVIEW_DOMAIN = "omnirun-preview.dev"


@dataclass(frozen=True)
class ConnectionConfig:
    api_url: str
    api_key: str
    request_timeout: float  # seconds


def resolve_config(
    api_url: Optional[str] = None, api_key: Optional[str] = None, request_timeout: Optional[float] = None
) -> ConnectionConfig:
    return ConnectionConfig(
        api_url=api_url or os.environ.get("OMNIRUN_API_URL") or DEFAULT_API_URL,
        api_key=api_key or os.environ.get("OMNIRUN_API_KEY") or "",
        request_timeout=request_timeout if request_timeout is not None else 60.0,
    )


def preview_domain(explicit: Optional[str] = None) -> str:
    return explicit or os.environ.get("OMNIRUN_PREVIEW_DOMAIN") or DEFAULT_PREVIEW_DOMAIN
