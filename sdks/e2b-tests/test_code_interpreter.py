"""`e2b-code-interpreter` (template `code-interpreter-v1`): /execute and /contexts on the
code-interpreter port, sync and async."""
import base64

import pytest
from e2b import SandboxException
from e2b_code_interpreter import AsyncSandbox as AsyncCodeSandbox
from e2b_code_interpreter import Sandbox as CodeSandbox

from conftest import RUN_ID, SANDBOX_TIMEOUT, kill_quietly

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def ci():
    sandbox = CodeSandbox.create(timeout=SANDBOX_TIMEOUT, metadata={"e2b-suite": RUN_ID})
    yield sandbox
    kill_quietly(sandbox)


def test_run_code_result(ci):
    execution = ci.run_code("1+1")
    assert execution.error is None
    assert execution.text == "2"
    assert execution.execution_count is None or execution.execution_count >= 1


def test_run_code_stdout_stderr(ci):
    out, err = [], []
    execution = ci.run_code(
        "import sys\nfor i in range(3):\n    print(f'line-{i}', flush=True)\nprint('warn', file=sys.stderr)",
        on_stdout=lambda m: out.append(m.line), on_stderr=lambda m: err.append(m.line),
    )
    assert execution.error is None
    assert "".join(execution.logs.stdout) == "line-0\nline-1\nline-2\n"
    assert "".join(execution.logs.stderr) == "warn\n"
    assert "".join(out) == "line-0\nline-1\nline-2\n"
    assert "".join(err) == "warn\n"


def test_run_code_matplotlib_png(ci):
    execution = ci.run_code(
        "import matplotlib.pyplot as plt\n"
        "plt.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.title('e2b')\n"
        "plt.show()\n"
    )
    assert execution.error is None, execution.error
    assert execution.results, execution
    png = execution.results[0].png
    assert png, execution.results[0]
    assert base64.b64decode(png).startswith(PNG_MAGIC)
    assert "png" in execution.results[0].formats()


def test_run_code_error(ci):
    execution = ci.run_code("1 / 0")
    assert execution.error is not None
    assert execution.error.name == "ZeroDivisionError"
    assert "division by zero" in execution.error.value
    assert "ZeroDivisionError" in execution.error.traceback
    assert execution.text is None


def test_default_context_keeps_state(ci):
    ci.run_code("kept_value = 40")
    assert ci.run_code("kept_value + 2").text == "42"


def test_code_context(ci):
    context = ci.create_code_context(cwd="/tmp")
    assert context.id
    assert context.language == "python"
    assert context.cwd == "/tmp"
    ci.run_code("x = 20", context=context)
    assert ci.run_code("x * 2 + 2", context=context).text == "42"
    assert ci.run_code("import os; os.getcwd()", context=context).text == "'/tmp'"
    # The default context does not see it.
    other = ci.run_code("x")
    assert other.error is not None and other.error.name == "NameError"
    assert context.id in [c.id for c in ci.list_code_contexts()]
    ci.restart_code_context(context)
    restarted = ci.run_code("x", context=context)
    assert restarted.error is not None and restarted.error.name == "NameError"
    ci.remove_code_context(context)
    assert context.id not in [c.id for c in ci.list_code_contexts()]


def test_run_code_envs_is_refused(ci):
    # OmniRun's contexts take no per-execution environment: a 501 naming env_vars.
    with pytest.raises(SandboxException) as info:
        ci.run_code("import os; os.environ.get('E2B_SUITE_VAR')", envs={"E2B_SUITE_VAR": "set"})
    assert "501" in str(info.value) and "env_vars" in str(info.value), info.value


def test_run_code_other_language_is_refused(ci):
    with pytest.raises(SandboxException) as info:
        ci.run_code("cat('hi')", language="r")
    assert "400" in str(info.value), info.value


def test_run_code_language_python(ci):
    assert ci.run_code("3 * 3", language="python").text == "9"


def test_commands_work_in_code_interpreter(ci):
    # The code-interpreter Sandbox is an e2b.Sandbox: envd calls go to the same sandbox.
    ci.run_code("open('/tmp/from-code.txt', 'w').write('written by code')")
    assert ci.files.read("/tmp/from-code.txt") == "written by code"
    assert ci.commands.run("python3 -c 'print(6*7)'").stdout == "42\n"


def test_async_run_code(ci):
    import asyncio

    async def body():
        sandbox = await AsyncCodeSandbox.connect(ci.sandbox_id)
        execution = await sandbox.run_code("2+3")
        assert execution.text == "5"
        # The default context, whose kernel runs already (a new one takes seconds to start).
        await sandbox.run_code("y = 7")
        assert (await sandbox.run_code("y * 6")).text == "42"
        failed = await sandbox.run_code("raise ValueError('nope')")
        assert failed.error.name == "ValueError"
        assert failed.error.value == "nope"
        contexts = await sandbox.list_code_contexts()
        assert all(c.id and c.language for c in contexts)

    asyncio.run(body())
