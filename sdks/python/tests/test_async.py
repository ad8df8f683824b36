"""The same surface through `AsyncSandbox` (asyncio, no plugin: each test runs its own loop)."""
import asyncio
import hashlib
import os
import pathlib
import re
import time

import pytest

from omnirun import AsyncLLM, AsyncSandbox, CommandExitException, SandboxNotFoundError

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_async_everything():
    async def main():
        async with await AsyncSandbox.create("playground", timeout=300) as sbx:
            info = await sbx.get_info()
            assert info.state == "running" and await sbx.is_running()
            assert (await sbx.commands.run("echo async")).stdout == "async\n"
            with pytest.raises(CommandExitException) as caught:
                await sbx.commands.run("exit 4")
            assert caught.value.exit_code == 4
            chunks = []
            result = await sbx.commands.run("for i in 1 2; do echo n$i; sleep 0.3; done", on_stdout=chunks.append)
            assert "".join(chunks) == result.stdout == "n1\nn2\n" and len(chunks) == 2
            handle = await sbx.commands.run("read x; echo [$x]", background=True)
            await handle.send_stdin("in\n")
            assert (await handle.wait(30)).stdout == "[in]\n"
            events = [e async for e in sbx.commands.connect(handle.pid)]
            assert events[-1] == {"type": "exit", "exit_code": 0} or events[-1].get("type") == "exit"
            blob = os.urandom(3 << 20)
            await sbx.files.write("/tmp/async/blob", blob)
            assert await sbx.files.read("/tmp/async/blob", "bytes") == blob
            digest = hashlib.sha256()
            async for chunk in await sbx.files.read("/tmp/async/blob", "stream"):
                digest.update(chunk)
            assert digest.hexdigest() == hashlib.sha256(blob).hexdigest()
            await sbx.files.write("/tmp/async/t.txt", "text")
            assert await sbx.files.read("/tmp/async/t.txt") == "text"
            assert {e.name for e in await sbx.files.list("/tmp/async")} == {"blob", "t.txt"}
            watch = sbx.files.watch_dir("/tmp/async")
            await asyncio.sleep(1)
            await sbx.files.write("/tmp/async/w.txt", "w")
            seen = []
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not any(e.name == "w.txt" for e in seen):
                await asyncio.sleep(0.2)
                seen += watch.get_new_events()
            await watch.stop()
            assert any(e.name == "w.txt" for e in seen), seen
            pty = await sbx.pty.create()
            await pty.send_stdin("echo async-pty\n")
            out = ""
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "async-pty" not in out:
                await asyncio.sleep(0.2)
                out += await pty.read()
            await pty.kill()
            assert "async-pty" in out
            ctx = await sbx.contexts.create("python")
            await sbx.contexts.execute(ctx.id, "n = 6")
            assert [r.text for r in (await sbx.contexts.execute(ctx.id, "n * 7")).results] == ["42"]
            await sbx.contexts.delete(ctx.id)
            llm = AsyncLLM()
            text = "".join([c async for c in llm.stream_chat_completion(model="test/echo", messages=[{"role": "user", "content": "a b"}])])
            assert text == "echo: a b"
            await llm.aclose()
            sandbox_id = sbx.sandbox_id
        with pytest.raises(SandboxNotFoundError):
            await AsyncSandbox.connect(sandbox_id)
    asyncio.run(main())


def test_async_readme_example_runs():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), re.S) if "asyncio" in b]
    assert blocks, "README has no async example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "__main__"})
