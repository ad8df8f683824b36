"""`e2b.AsyncSandbox`: create, commands, files, the streamed WatchDir, PTY and kill, on one
event loop per module (conftest's `loop`)."""
import re

import pytest
from e2b import (
    AsyncSandbox,
    CommandExitException,
    FilesystemEventType,
    PtySize,
    SandboxNotFoundException,
    TemplateException,
)

from conftest import ENVD_VERSION, RUN_ID, SANDBOX_TIMEOUT, await_until


@pytest.fixture(scope="module")
def asbx(loop):
    sandbox = loop.run_until_complete(
        AsyncSandbox.create(timeout=SANDBOX_TIMEOUT, metadata={"e2b-suite": RUN_ID, "purpose": "async"},
                            envs={"ASYNC_ENV": "yes"}))
    yield sandbox
    try:
        loop.run_until_complete(sandbox.kill())
    except Exception as e:
        print(f"kill of {sandbox.sandbox_id} during cleanup: {e!r}")


def test_create_and_info(loop, asbx):
    async def body():
        info = await asbx.get_info()
        assert info.sandbox_id == asbx.sandbox_id
        assert info.metadata["purpose"] == "async"
        assert info.envd_version == ENVD_VERSION
        assert await asbx.is_running() is True
    loop.run_until_complete(body())


def test_run(loop, asbx):
    async def body():
        result = await asbx.commands.run("echo $ASYNC_ENV; echo err >&2")
        assert result.stdout == "yes\n"
        assert result.stderr == "err\n"
        out = []
        await asbx.commands.run("echo a; echo b", on_stdout=out.append)
        assert "".join(out) == "a\nb\n"
        with pytest.raises(CommandExitException) as info:
            await asbx.commands.run("exit 4")
        assert info.value.exit_code == 4
        assert (await asbx.commands.run("whoami", user="root")).stdout == "root\n"
    loop.run_until_complete(body())


def test_background_stdin_kill(loop, asbx):
    async def body():
        cat = await asbx.commands.run("cat", background=True, stdin=True)
        await asbx.commands.send_stdin(cat.pid, "async input\n")
        await asbx.commands.close_stdin(cat.pid)
        assert (await cat.wait()).stdout == "async input\n"

        sleeper = await asbx.commands.run("sleep 600", background=True)
        assert sleeper.pid in [p.pid for p in await asbx.commands.list()]
        assert await asbx.commands.kill(sleeper.pid) is True
        with pytest.raises(CommandExitException):
            await sleeper.wait()
    loop.run_until_complete(body())


def test_connect_to_background(loop, asbx):
    async def body():
        handle = await asbx.commands.run("sleep 8; echo reconnected", background=True)
        await handle.disconnect()
        again = await asbx.commands.connect(handle.pid)
        result = await again.wait()
        assert "reconnected\n" in result.stdout
    loop.run_until_complete(body())


def test_files(loop, asbx):
    async def body():
        path = "/home/user/async/a.txt"
        info = await asbx.files.write(path, "async ✓")
        assert info.path == path
        assert await asbx.files.read(path) == "async ✓"
        data = bytes(range(256)) * 100
        await asbx.files.write("/home/user/async/b.bin", data)
        assert bytes(await asbx.files.read("/home/user/async/b.bin", format="bytes")) == data
        await asbx.files.write_files([{"path": "/home/user/async/c.txt", "data": "c"},
                                      {"path": "/home/user/async/d.txt", "data": "d"}])
        names = sorted(e.name for e in await asbx.files.list("/home/user/async"))
        assert names == ["a.txt", "b.bin", "c.txt", "d.txt"]
        assert await asbx.files.exists("/home/user/async/c.txt") is True
        assert await asbx.files.make_dir("/home/user/async/dir") is True
        await asbx.files.rename("/home/user/async/c.txt", "/home/user/async/dir/c.txt")
        assert (await asbx.files.get_info("/home/user/async/dir/c.txt")).size == 1
        await asbx.files.remove("/home/user/async/dir")
        assert await asbx.files.exists("/home/user/async/dir") is False
    loop.run_until_complete(body())


def test_watch_dir_stream(loop, asbx):
    async def body():
        watched = "/home/user/async-watched"
        await asbx.files.make_dir(watched)
        events, exits = [], []
        handle = await asbx.files.watch_dir(watched, on_event=events.append, on_exit=exits.append)
        try:
            await asbx.files.write(f"{watched}/new.txt", "hello")
            await await_until(lambda: [e for e in events if e.name == "new.txt" and e.type in
                                       (FilesystemEventType.CREATE, FilesystemEventType.WRITE)],
                              timeout=30, what="a create/write event for new.txt")
            assert exits == []  # the stream is still open
        finally:
            await handle.stop()
        assert exits == [None]
    loop.run_until_complete(body())


def test_watch_include_entry_needs_newer_envd(loop, asbx):
    async def body():
        with pytest.raises(TemplateException):
            await asbx.files.watch_dir("/home/user", on_event=lambda e: None, include_entry=True)
        with pytest.raises(TemplateException, match="envd 0.6.2"):
            await asbx.files.write("/home/user/meta.txt", "x", metadata={"k": "v"})
    loop.run_until_complete(body())


def test_pty(loop, asbx):
    async def body():
        output = bytearray()
        terminal = await asbx.pty.create(PtySize(rows=24, cols=80), on_data=output.extend, timeout=120)
        await asbx.pty.send_stdin(terminal.pid, b"echo hi\n")
        # bash echoes the typed line, then prints `hi` on a line of its own (after
        # bracketed-paste escapes, so only the end of the line is certain).
        await await_until(lambda: re.search(rb"[\r\n]hi\r\n", output), timeout=30,
                          what=lambda: f"`hi` in {bytes(output)!r}")
        await asbx.pty.resize(terminal.pid, PtySize(rows=30, cols=100))
        await asbx.pty.send_stdin(terminal.pid, b"stty size\n")
        await await_until(lambda: re.search(rb"[\r\n]30 100\r\n", output), timeout=30,
                          what=lambda: f"`30 100` after the resize in {bytes(output)!r}")
        assert await asbx.pty.kill(terminal.pid) is True
        with pytest.raises(CommandExitException):
            await terminal.wait()
    loop.run_until_complete(body())


def test_kill(loop, asbx):
    async def body():
        assert await asbx.kill() is True
        assert await asbx.is_running() is False
        with pytest.raises(SandboxNotFoundException):
            await AsyncSandbox.get_info(asbx.sandbox_id)
        assert await AsyncSandbox.kill(asbx.sandbox_id) is False
    loop.run_until_complete(body())
