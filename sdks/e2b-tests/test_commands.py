"""Commands and PTY with the sync `e2b.Sandbox` (process.Process over Connect RPC)."""
import re

import pytest
from e2b import CommandExitException, NotFoundException, PtySize, TimeoutException

from conftest import wait_until


def test_run_stdout_and_exit_code(sbx):
    result = sbx.commands.run("echo hello from $(whoami)")
    assert result.exit_code == 0
    assert result.stdout == "hello from user\n"
    assert result.stderr == ""
    assert result.error is None


def test_run_stderr(sbx):
    result = sbx.commands.run("echo out; echo err >&2")
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_run_callbacks(sbx):
    out, err = [], []
    result = sbx.commands.run(
        "for i in 1 2 3; do echo line-$i; sleep 0.2; done; echo warn >&2",
        on_stdout=out.append, on_stderr=err.append,
    )
    assert "".join(out) == "line-1\nline-2\nline-3\n" == result.stdout
    assert "".join(err) == "warn\n"


def test_nonzero_exit_raises(sbx):
    with pytest.raises(CommandExitException) as info:
        sbx.commands.run("echo partial; echo bad >&2; exit 3")
    assert info.value.exit_code == 3
    assert info.value.stdout == "partial\n"
    assert info.value.stderr == "bad\n"
    assert "exited with code 3" in str(info.value)


def test_envs_and_cwd(sbx):
    result = sbx.commands.run("echo $GREETING; pwd", envs={"GREETING": "hi there"}, cwd="/tmp")
    assert result.stdout == "hi there\n/tmp\n"


def test_default_cwd_is_home(sbx):
    assert sbx.commands.run("pwd").stdout == "/home/user\n"


def test_user_root(sbx):
    assert sbx.commands.run("whoami", user="root").stdout == "root\n"
    assert sbx.commands.run("whoami", user="user").stdout == "user\n"


def test_unicode_output(sbx):
    assert sbx.commands.run("printf 'alpha \\xe2\\x9c\\x93\\n'").stdout == "alpha ✓\n"


def test_background_and_wait(sbx):
    handle = sbx.commands.run("sleep 1; echo done-in-background", background=True)
    assert handle.pid > 0
    result = handle.wait()
    assert result.exit_code == 0
    assert result.stdout == "done-in-background\n"


def test_background_nonzero_wait_raises(sbx):
    handle = sbx.commands.run("exit 5", background=True)
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.exit_code == 5


def test_stdin_send_and_close(sbx):
    handle = sbx.commands.run("cat", background=True, stdin=True)
    handle.send_stdin("first line\n")
    sbx.commands.send_stdin(handle.pid, b"second \xe2\x9c\x93\n")
    sbx.commands.close_stdin(handle.pid)
    result = handle.wait()
    assert result.exit_code == 0
    assert result.stdout == "first line\nsecond ✓\n"


def test_stdin_read_line(sbx):
    handle = sbx.commands.run("read line; echo got:$line", background=True, stdin=True)
    handle.send_stdin("ping\n")
    assert handle.wait().stdout == "got:ping\n"


def test_stream_input(sbx):
    # StreamInput: a client stream of stdin chunks.
    handle = sbx.commands.run("cat", background=True, stdin=True)
    sbx.commands.stream_input(handle.pid, [b"one ", "two ✓".encode(), b"\n"])
    sbx.commands.close_stdin(handle.pid)
    assert handle.wait().stdout == "one two ✓\n"


def test_list_and_kill_background(sbx):
    handle = sbx.commands.run("sleep 600", background=True)
    listed = wait_until(lambda: [p for p in sbx.commands.list() if p.pid == handle.pid],
                        what=f"pid {handle.pid} in commands.list()")
    process = listed[0]
    assert "sleep 600" in " ".join([process.cmd, *process.args]), process
    assert sbx.commands.kill(handle.pid) is True
    with pytest.raises(CommandExitException) as info:
        handle.wait()
    assert info.value.exit_code != 0
    wait_until(lambda: all(p.pid != handle.pid for p in sbx.commands.list()),
               what=f"pid {handle.pid} gone from commands.list()")


def test_handle_kill(sbx):
    handle = sbx.commands.run("sleep 600", background=True)
    assert handle.kill() is True
    with pytest.raises(CommandExitException):
        handle.wait()


def test_kill_unknown_pid_is_false(sbx):
    assert sbx.commands.kill(987654) is False


def test_connect_to_background_process(sbx):
    handle = sbx.commands.run("sleep 8; echo after-reconnect", background=True)
    pid = handle.pid
    handle.disconnect()
    # The process keeps running without a client attached.
    assert any(p.pid == pid for p in sbx.commands.list())
    again = sbx.commands.connect(pid)
    assert again.pid == pid
    result = again.wait()
    assert result.exit_code == 0
    assert "after-reconnect\n" in result.stdout


def test_connect_unknown_pid_raises(sbx):
    with pytest.raises(NotFoundException):
        sbx.commands.connect(987654)


def test_command_timeout(sbx):
    # The stream's deadline (connect-timeout-ms) ends it with deadline_exceeded.
    with pytest.raises(TimeoutException):
        sbx.commands.run("sleep 30", timeout=2)


def _read_pty_until(handle, pattern, limit=200):
    """Reads PTY output from the handle's stream until `pattern` (a regex) matches."""
    seen = b""
    for count, (_, _, pty) in enumerate(handle):
        if pty:
            seen += pty
            if re.search(pattern, seen):
                return seen
        if count > limit:
            break
    raise AssertionError(f"PTY output never matched {pattern!r}: {seen!r}")


def test_pty_echo_resize_kill(sbx):
    handle = sbx.pty.create(PtySize(rows=24, cols=80), timeout=120)
    assert handle.pid > 0
    sbx.pty.send_stdin(handle.pid, b"echo hi\n")
    # The terminal echoes the typed line, then bash prints `hi` on a line of its own (after
    # bracketed-paste escapes, so only the end of the line is certain).
    _read_pty_until(handle, rb"[\r\n]hi\r\n")
    sbx.pty.resize(handle.pid, PtySize(rows=40, cols=132))
    sbx.pty.send_stdin(handle.pid, b"stty size\n")
    _read_pty_until(handle, rb"[\r\n]40 132\r\n")
    # A PTY is listed among the processes.
    assert any(p.pid == handle.pid for p in sbx.commands.list())
    assert sbx.pty.kill(handle.pid) is True
    with pytest.raises(CommandExitException):
        handle.wait()


def test_pty_stream_input(sbx):
    handle = sbx.pty.create(PtySize(rows=24, cols=80), timeout=120)
    sbx.pty.stream_input(handle.pid, [b"echo stre", b"amed-$((6*7))\n"])
    _read_pty_until(handle, rb"[\r\n]streamed-42\r\n")
    sbx.pty.send_stdin(handle.pid, b"exit 0\n")
    assert handle.wait().exit_code == 0


def test_pty_exit_code(sbx):
    handle = sbx.pty.create(PtySize(rows=24, cols=80), timeout=120)
    sbx.pty.send_stdin(handle.pid, b"exit 0\n")
    result = handle.wait()
    assert result.exit_code == 0


def test_pty_kill_unknown_pid_is_false(sbx):
    assert sbx.pty.kill(987654) is False
