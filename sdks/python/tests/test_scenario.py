"""The shared scenario (sdks/scenario.json), step by step, with the blocking client."""
import hashlib
import os
import time

import httpx
import pytest

from omnirun import LLM, CommandExitException, NotAvailableError, SandboxError, Templates

from conftest import SCENARIO


def run_step(sandbox, step):
    op = step["op"]
    if op == "run":
        if step["exitCode"] == 0:
            result = sandbox.commands.run(step["cmd"], envs=step.get("envs"), cwd=step.get("cwd"))
            assert (result.stdout, result.exit_code) == (step["stdout"], 0)
        else:
            with pytest.raises(CommandExitException) as caught:
                sandbox.commands.run(step["cmd"])
            assert (caught.value.exit_code, caught.value.stdout, caught.value.stderr) == (
                step["exitCode"], step["stdout"], step["stderr"])
    elif op == "stream":
        seen = []
        kwargs = dict(on_stdout=lambda d: seen.append(("out", d, time.monotonic())),
                      on_stderr=lambda d: seen.append(("err", d, time.monotonic())))
        if step["exitCode"] == 0:
            result = sandbox.commands.run(step["cmd"], **kwargs)
            assert result.stdout == step["stdout"] and result.stderr == step["stderr"]
            outs = [d for kind, d, _ in seen if kind == "out"]
            assert "".join(outs) == step["stdout"]
            # chunks arrive as produced: line-1 arrives well before line-3
            times = {d.strip(): t for kind, d, t in seen if kind == "out" and d.count("\n") == 1}
            if "line-1" in times and "line-3" in times:
                assert times["line-3"] - times["line-1"] > 0.2
            assert "".join(d for kind, d, _ in seen if kind == "err") == step["stderr"]
        else:
            with pytest.raises(CommandExitException) as caught:
                sandbox.commands.run(step["cmd"], **kwargs)
            assert caught.value.exit_code == step["exitCode"]
            assert "".join(d for kind, d, _ in seen if kind == "out") == step["stdout"]
    elif op == "background":
        handle = sandbox.commands.run(step["cmd"], background=True)
        assert handle.pid > 0
        assert any(p.pid == handle.pid for p in sandbox.commands.list())
        handle.send_stdin(step["stdin"])
        result = handle.wait(30)
        assert (result.stdout, result.exit_code) == (step["stdout"], step["exitCode"])
        again = sandbox.commands.connect(handle.pid).wait(5)  # finished processes stay addressable
        assert again.stdout == step["stdout"]
    elif op == "background-kill":
        handle = sandbox.commands.run(step["cmd"], background=True)
        assert handle.get_info().running
        handle.kill()
        deadline = time.monotonic() + 15
        while handle.get_info().running and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not handle.get_info().running
    elif op == "code":
        result = sandbox.run_code(step["code"], step["language"])
        assert (result.stdout, result.exit_code) == (step["stdout"], 0)
    elif op == "text":
        sandbox.files.write(step["path"], step["content"])
        assert sandbox.files.read(step["path"]) == step["content"]
        assert sandbox.files.info(step["path"]).size == len(step["content"].encode())
    elif op == "bytes":
        blob = os.urandom(step["mib"] << 20)
        info = sandbox.files.write(step["path"], blob)
        assert info.size == len(blob)
        assert sandbox.commands.run(f"sha256sum {step['path']}").stdout.split()[0] == hashlib.sha256(blob).hexdigest()
        back = sandbox.files.read(step["path"], "bytes")
        assert len(back) == len(blob) and back == blob
        streamed = hashlib.sha256()
        for chunk in sandbox.files.read(step["path"], "stream"):
            streamed.update(chunk)
        assert streamed.hexdigest() == hashlib.sha256(blob).hexdigest()
        url = sandbox.download_url(step["path"])  # a signed URL works without the key
        assert hashlib.sha256(httpx.get(url, timeout=120).content).hexdigest() == hashlib.sha256(blob).hexdigest()
        sandbox.files.remove(step["path"])
    elif op == "batch":
        entries = [{"path": f"{step['dir']}/{name}", "content": content} for name, content in step["files"].items()]
        written = sandbox.files.write(entries)
        assert sorted(e.path for e in written) == sorted(e["path"] for e in entries)
        listed = {e.name: e for e in sandbox.files.list(step["dir"])}
        assert set(listed) == set(step["files"])
        for name, content in step["files"].items():
            assert listed[name].size == len(content) and not listed[name].is_dir
    elif op == "fs":
        d = step["dir"]
        sandbox.files.make_dir(f"{d}/sub/deeper")
        assert sandbox.files.info(f"{d}/sub").is_dir
        sandbox.files.write(f"{d}/sub/f.txt", "f")
        assert sandbox.files.exists(f"{d}/sub/f.txt")
        assert not sandbox.files.exists(f"{d}/missing")
        moved = sandbox.files.rename(f"{d}/sub/f.txt", f"{d}/g.txt")
        assert moved.path == f"{d}/g.txt"
        assert not sandbox.files.exists(f"{d}/sub/f.txt")
        deep = [e.path for e in sandbox.files.list(d, depth=2)]
        assert f"{d}/sub/deeper" in deep
        sandbox.files.remove(f"{d}/g.txt")
        assert not sandbox.files.exists(f"{d}/g.txt")
    elif op == "watch":
        sandbox.files.make_dir(step["dir"])
        watch = sandbox.files.watch_dir(step["dir"])
        try:
            time.sleep(1)
            path = f"{step['dir']}/{step['file']}"
            sandbox.files.write(path, "x")
            events = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(e.path == path for e in events):
                time.sleep(0.2)
                events += watch.get_new_events()
            assert any(e.path == path and e.type in ("create", "write") for e in events), events
        finally:
            watch.stop()
    elif op == "pty":
        session = sandbox.pty.create(cols=100, rows=30)
        try:
            assert any(p.pid == session.pid for p in sandbox.pty.list())
            session.resize(120, 40)
            session.send_stdin("stty size\n" + step["input"])
            output = ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (step["expect"] not in output or "40 120" not in output):
                time.sleep(0.2)
                output += session.read()
            assert step["expect"] in output and "40 120" in output, output
        finally:
            session.kill()
    elif op == "llm-models":
        assert step["model"] in [m["id"] for m in LLM().list_models()]
    elif op == "llm-chat":
        answer = LLM().chat_completion(model=step["model"], messages=[{"role": "user", "content": step["prompt"]}])
        assert answer["choices"][0]["message"]["content"] == step["text"]
        usage = LLM().get_usage()
        assert {"spendUsedCents", "spendCapCents", "remainingCents"} <= set(usage)
    elif op == "llm-stream":
        chunks = list(LLM().stream_chat_completion(model=step["model"], messages=[{"role": "user", "content": step["prompt"]}]))
        assert "".join(chunks) == step["text"] and len(chunks) >= step["minChunks"]
    elif op == "templates":
        assert step["includes"] in [t.name for t in Templates().list()]
    elif op == "metrics":
        snapshots = sandbox.production.metrics_snapshots()
        assert isinstance(snapshots, list)
        sandbox.production.metrics()
    elif op == "expose":
        info = sandbox.expose(step["port"])
        assert info.port == step["port"] and info.url.startswith("http") and info.status in ("pending", "ready"), info
        assert info.id in [e.id for e in sandbox.exposures.list()]
        sandbox.exposures.close(info.id)
        assert sandbox.exposures.get(info.id).status == "revoked"
    elif op == "desktop-absent":
        with pytest.raises(SandboxError) as caught:
            sandbox.desktop.get_screen()
        assert caught.value.status == 409, caught.value
        # the screenshot's scaling options reach the server (checked before the sandbox is)
        with pytest.raises(SandboxError) as caught:
            sandbox.desktop.screenshot(scale=2)
        assert caught.value.status == 400 and "scale" in str(caught.value), caught.value
    elif op == "pause-resume":
        assert sandbox.pause()["status"] == "paused"
        assert sandbox.resume()["status"] == "running"
        assert sandbox.commands.run(step["cmd"]).stdout == step["stdout"]
    elif op == "contexts":
        ctx = sandbox.contexts.create("python", cwd=step["cwd"])
        assert ctx.id and ctx.language == "python" and ctx.cwd == step["cwd"] and ctx.created_at, ctx
        sandbox.contexts.execute(ctx.id, step["set"])
        got = sandbox.contexts.execute(ctx.id, step["get"])
        assert [r.text for r in got.results] == [step["text"]] and got.error is None, got
        chunks = []
        streamed = sandbox.contexts.execute(ctx.id, step["stream"], on_stdout=chunks.append)
        assert "".join(chunks) == step["stdout"] and streamed.execution_count == 3, (chunks, streamed)
        failed = sandbox.contexts.execute(ctx.id, step["raise"])
        assert failed.error.startswith(step["error"]) and step["error"] in failed.logs.stderr, failed
        assert ctx.id in [c.id for c in sandbox.contexts.list()]
        assert sandbox.contexts.restart(ctx.id).id == ctx.id
        assert sandbox.contexts.execute(ctx.id, step["get"]).error.startswith("NameError")
        sandbox.contexts.delete(ctx.id)
        assert ctx.id not in [c.id for c in sandbox.contexts.list()]
        with pytest.raises(SandboxError) as caught:
            sandbox.contexts.create(step["badLanguage"])
        assert caught.value.status == 400 and "python" in str(caught.value), caught.value
    elif op == "network-policy-air-gapped":
        # The scenario's sandbox has no network card: a policy has nothing to apply to.
        with pytest.raises(SandboxError) as caught:
            sandbox.set_network_policy({"allowIPs": ["192.0.2.1"]})
        assert caught.value.status == 409, caught.value
    elif op == "not-available":
        call = {
            "pause": lambda: sandbox.pause(),
            "metrics": lambda: sandbox.production.metrics(),
            "network-policy": lambda: sandbox.set_network_policy({"allowIPs": ["1.1.1.1"]}),
            "exposures": lambda: sandbox.expose(8000),
            "desktop": lambda: sandbox.desktop.get_screen(),
        }[step["call"]]
        with pytest.raises(NotAvailableError) as caught:
            call()
        assert caught.value.status == 501 and caught.value.code == "not_implemented"
    else:
        raise AssertionError(f"unknown scenario op {op}")


@pytest.mark.parametrize("step", SCENARIO["steps"], ids=[s["name"] for s in SCENARIO["steps"]])
def test_scenario(sandbox, step):
    run_step(sandbox, step)
