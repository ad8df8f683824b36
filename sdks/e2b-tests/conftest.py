"""The unmodified PyPI `e2b` and `e2b-code-interpreter` SDKs against a live `omnirun serve`
(real microVMs), through the server's E2B-compatible endpoint under `/e2b`.

scripts/test-sdks.sh (suite `e2b`) installs the pinned packages of requirements.txt into a
virtualenv and exports E2B_API_URL and E2B_SANDBOX_URL (both http://127.0.0.1:PORT/e2b) and
E2B_API_KEY (an OmniRun API key of this suite's account); E2B_DOMAIN and E2B_DEBUG stay unset.

The account may run 3 sandboxes at a time, so every module keeps at most two running: a
module-scoped sandbox, plus at most one of a test's own, killed before the test returns."""
import asyncio
import os
import time
import uuid

import pytest
from e2b import Sandbox

# What the endpoint reports as envdVersion: calls gated on a newer envd fail in the SDK.
ENVD_VERSION = "0.5.7"
# Long enough for the whole suite; every sandbox is killed by its fixture or test anyway.
SANDBOX_TIMEOUT = 600
# The suite's own label, so that listings only see this run's sandboxes.
RUN_ID = uuid.uuid4().hex[:12]


def pytest_configure(config):
    for name in ("E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY"):
        if not os.environ.get(name):
            raise pytest.UsageError(f"{name} is not set: run the suite through scripts/test-sdks.sh (SDK_SUITES=e2b)")
    for name in ("E2B_DOMAIN", "E2B_DEBUG"):
        if os.environ.get(name):
            raise pytest.UsageError(f"{name} must not be set: the suite talks to the server through E2B_API_URL/E2B_SANDBOX_URL only")


def _describe(what):
    return what() if callable(what) else what


def wait_until(predicate, timeout=30.0, interval=0.2, what="condition"):
    """Polls `predicate` until it returns a true value, which is returned. `what` (a string,
    or a callable giving one at the time of failure) says what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what)}")
        time.sleep(interval)


async def await_until(predicate, timeout=30.0, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {_describe(what)}")
        await asyncio.sleep(interval)


def kill_quietly(sbx):
    try:
        sbx.kill()
    except Exception as e:  # the test has already failed or killed it; say so, do not mask it
        print(f"kill of {sbx.sandbox_id} during cleanup: {e!r}")


@pytest.fixture(scope="module")
def sbx():
    """One `base` sandbox for a module's tests."""
    sandbox = Sandbox.create(timeout=SANDBOX_TIMEOUT, metadata={"e2b-suite": RUN_ID})
    yield sandbox
    kill_quietly(sandbox)


@pytest.fixture(scope="module")
def loop():
    """One event loop per module, so that an async sandbox made by a fixture is used on the
    loop its connections belong to (no pytest-asyncio needed)."""
    event_loop = asyncio.new_event_loop()
    yield event_loop
    event_loop.close()
