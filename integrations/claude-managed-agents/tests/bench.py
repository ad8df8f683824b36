"""Figures of the worker against a real OmniRun server and the stand-in control plane:
work item claimed -> first tool call running in its sandbox (a new sandbox, and a resumed
one on the session's second turn), and the second turn's resume (find + resume).

  OMNIRUN_API_URL=... OMNIRUN_API_KEY=... python3 tests/bench.py [--sessions 5] [--template playground]
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from standin import ControlPlane  # noqa: E402

from omnirun import Sandbox  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--template", default=os.environ.get("OMNIRUN_CLAUDE_TEST_TEMPLATE", "playground"))
    args = ap.parse_args()
    api_url, api_key = os.environ["OMNIRUN_API_URL"], os.environ["OMNIRUN_API_KEY"]
    key = "sk-ant-bench-" + os.urandom(8).hex()
    cp = ControlPlane(key, ttl_seconds=30)
    url = cp.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANTHROPIC_")}
    env.update(ANTHROPIC_BASE_URL=url, ANTHROPIC_ENVIRONMENT_ID=cp.env_id, ANTHROPIC_ENVIRONMENT_KEY=key)
    log = Path(tempfile.mkdtemp()) / "bench-worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "omnirun_claude_worker", "run", "--template", args.template,
                                   "--idle-seconds", "1", "--max-sessions", "1"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT)
        try:
            for i in range(args.sessions):
                s = cp.create_session([{"name": "bash", "input": {"command": f"echo {i} > f.txt"}}])
                cp.wait(lambda: s.turns_done >= 1, 300, "turn 1")
                first = cp.items_for(s)[0]
                cp.wait(lambda: first.state == "stopped", 120, "item 1 stopped")
                time.sleep(2)  # the pause completes after the item stops
                cp.follow_up(s, [{"name": "bash", "input": {"command": "cat f.txt"}}], terminate_after=True)
                cp.wait(lambda: s.turns_done >= 2, 300, "turn 2")
                second = cp.items_for(s)[1]
                cp.wait(lambda: second.state == "stopped", 120, "item 2 stopped")
                time.sleep(2)
                print(f"session {i + 1}/{args.sessions} done", flush=True)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(120)
            cp.stop()
            for state in ("running", "paused"):
                for sb in Sandbox.list(api_url=api_url, api_key=api_key, state=state,
                                       metadata={"omnirun-claude-worker": "1"}):
                    Sandbox.connect(sb.sandbox_id, api_url=api_url, api_key=api_key).kill()
    text = log.read_text()
    acquire = re.findall(r"figure acquire_ms=(\d+) how=(\w+) session_id=(\S+)", text)
    first_tool = re.findall(r"figure claim_to_first_tool_ms=(\d+) session_id=(\S+)", text)
    how_by_order = [how for _, how, _ in acquire]
    rows = {"created": [], "resumed": []}
    for (ms, _sid), how in zip(first_tool, how_by_order):
        rows.setdefault(how, []).append(int(ms))
    resumes = [int(ms) for ms, how, _ in acquire if how == "resumed"]
    creates = [int(ms) for ms, how, _ in acquire if how == "created"]

    def med(v):
        return f"{statistics.median(v):.0f} ms (n={len(v)}, min {min(v)}, max {max(v)})" if v else "n/a"
    print(f"claimed -> first tool call running, new sandbox:     {med(rows['created'])}")
    print(f"claimed -> first tool call running, resumed sandbox: {med(rows['resumed'])}")
    print(f"sandbox create (+ tools installed):                  {med(creates)}")
    print(f"second-turn resume (find + resume + timeout):         {med(resumes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
