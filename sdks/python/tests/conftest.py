"""The suite runs against a live `omnirun serve` started by scripts/test-sdks.sh, which
exports OMNIRUN_API_URL, OMNIRUN_API_KEY (this suite's account) and
OMNIRUN_TEST_LIMIT_KEY (an account of its own for the concurrent-limit test)."""
import json
import os
import pathlib

import pytest

from omnirun import Sandbox

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCENARIO = json.loads((ROOT / "scenario.json").read_text())


def pytest_configure(config):
    for name in ("OMNIRUN_API_URL", "OMNIRUN_API_KEY"):
        if not os.environ.get(name):
            raise pytest.UsageError(f"{name} is not set: run the suite through scripts/test-sdks.sh")


@pytest.fixture(scope="session")
def sandbox():
    sbx = Sandbox.create(SCENARIO["template"], timeout=900)
    yield sbx
    sbx.kill()
