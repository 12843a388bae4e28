"""The Python sandbox against hostile code: each attack is stopped with a clear error, the
caller carries on, and benign code still runs."""

from __future__ import annotations

import pytest

from pipelines.sandbox import SandboxConfig, network_isolation, run_python


def test_benign_code_prints_its_result():
    r = run_python("print(2+3)")
    assert r.ok and r.output == "5\n" and r.error is None


def test_stdlib_imports_and_temp_dir_files_work():
    code = "import json, math\nopen('a.txt','w').write(json.dumps(math.isqrt(49)))\nprint(open('a.txt').read())"
    r = run_python(code)
    assert r.ok, r.error
    assert r.output.strip() == "7"


@pytest.mark.parametrize(
    "name, code, expected",
    [
        ("infinite loop", "while True: pass", "timeout"),
        ("sleep", "import time\ntime.sleep(60)", "timeout"),
        ("fork bomb", "import os\nwhile True: os.fork()", "process control"),
        ("subprocess", "import subprocess\nsubprocess.run(['id'])", "blocked by sandbox"),
        ("os.system", "import os\nos.system('id')", "process control"),
        ("huge allocation", "x = bytearray(4 * 1024**3)", "memory limit"),
        ("read /etc/passwd", "print(open('/etc/passwd').read())", "/etc/passwd"),
        ("list /etc", "import os\nprint(os.listdir('/etc'))", "listing"),
        ("socket", "import socket\nsocket.create_connection(('127.0.0.1', 22), timeout=1)", "network"),
        ("raw socket", "import socket\nsocket.socket()", "network"),
        ("ctypes escape", "import ctypes", "ctypes"),
        ("endless output", "while True: print('x' * 4096)", "output limit"),
    ],
)
def test_hostile_code_is_stopped(name, code, expected):
    r = run_python(code, timeout_s=1.5)
    assert not r.ok, name
    assert expected in r.error, (name, r.error)


def test_writes_outside_the_temp_dir_are_refused(tmp_path):
    target = tmp_path / "evil.txt"
    victim = tmp_path / "keep.txt"
    victim.write_text("precious")
    for code in (f"open({str(target)!r}, 'w').write('x')",
                 f"import os\nos.remove({str(victim)!r})",
                 f"import os\nos.rename({str(victim)!r}, 'stolen.txt')",
                 f"import pathlib\npathlib.Path({str(target)!r}).write_text('x')"):
        r = run_python(code)
        assert not r.ok and "outside the sandbox directory" in r.error, (code, r.error)
    assert not target.exists()
    assert victim.read_text() == "precious"


def test_python_exception_is_reported_not_raised():
    r = run_python("print('before')\n1/0")
    assert not r.ok and r.output == "before\n"
    assert r.error == "ZeroDivisionError: division by zero"


def test_network_namespace_without_the_hook_has_no_route():
    """When the kernel gives us a network namespace, even a socket that got past the hook
    would find no network: check it from a namespaced child directly."""
    if network_isolation() != "namespace":
        pytest.skip("no network namespace on this machine (audit hook only)")
    import subprocess
    import sys

    from pipelines.sandbox import _netns_prefix

    code = ("import socket\ntry:\n socket.create_connection(('10.255.255.1', 80), timeout=2)\n"
            "except OSError as e:\n print(e.errno)")
    out = subprocess.run([*_netns_prefix(), sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "101"  # ENETUNREACH: no interface is up


def test_config_limits_apply():
    r = run_python("x = bytearray(64 * 1024**2)\nprint(len(x))", config=SandboxConfig(memory_mb=48))
    assert not r.ok and "memory limit" in r.error
    r = run_python("x = bytearray(64 * 1024**2)\nprint(len(x))", memory_mb=256)
    assert r.ok and r.output.strip() == str(64 * 1024**2)
