"""The sandbox tools, called through the ToolRegistry the way the model calls them."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from clara_core.llm.types import ToolCall
from sandbox.base import Backend
from sandbox.manager import SandboxManager
from tools.registry import ToolContext, ToolRegistry, ToolResult
from tools.sandbox_tools import register_sandbox_tools


@pytest.fixture
async def registry(backend: Backend) -> ToolRegistry:
    reg = ToolRegistry()
    n = register_sandbox_tools(reg, SandboxManager(backend, idle_timeout=600), exec_timeout=5)
    assert n == 6
    return reg


async def call(reg: ToolRegistry, user: str, name: str, **args: object) -> ToolResult:
    return await reg.call(ToolCall("c1", name, json.dumps(args)), ToolContext(user_id=user))


def test_nothing_is_offered_without_a_sandbox() -> None:
    reg = ToolRegistry()
    assert register_sandbox_tools(reg, None) == 0
    assert len(reg) == 0


async def test_execute_python_returns_what_was_printed(registry: ToolRegistry) -> None:
    r = await call(registry, "tool-py", "execute_python", code="print(2**200)")
    assert not r.is_error
    assert r.content == str(2**200) + "\n"  # verbatim


async def test_execute_python_failure_shows_stderr_and_status(registry: ToolRegistry) -> None:
    r = await call(
        registry, "tool-py", "execute_python", code="print('before')\nraise SystemExit(4)"
    )
    assert r.content == "before\n[exit status 4]"
    r = await call(registry, "tool-py", "execute_python", code="undefined_name")
    assert "NameError" in r.content and "[exit status 1]" in r.content


async def test_execute_python_timeout_is_said_plainly(registry: ToolRegistry) -> None:
    r = await call(registry, "tool-slow", "execute_python", code="while True: pass", timeout=1)
    assert "[stopped:" in r.content and "killed" in r.content
    r = await call(registry, "tool-slow", "execute_python", code="print('next')")
    assert r.content == "next\n"


async def test_shell_and_files_round_trip(registry: ToolRegistry) -> None:
    u = "tool-files"
    r = await call(registry, u, "write_file", path="notes/a.txt", content="one\ntwo\n")
    assert r.content == "wrote 8 bytes to /workspace/notes/a.txt"
    r = await call(registry, u, "run_shell", command="wc -l < notes/a.txt; echo made > b.txt")
    assert r.content.strip() == "2"
    r = await call(registry, u, "read_file", path="b.txt")
    assert r.content == "made\n"
    r = await call(registry, u, "list_files")
    assert r.content.splitlines() == ["b.txt  (5 bytes)", "notes/"]
    r = await call(registry, u, "list_files", path="notes")
    assert r.content == "notes/a.txt  (8 bytes)"


@pytest.mark.parametrize(
    ("tool", "args", "needle"),
    [
        ("read_file", {"path": "../../etc/passwd"}, "leaves the workspace"),
        ("read_file", {"path": "/etc/passwd"}, "outside the workspace"),
        ("read_file", {"path": "missing.txt"}, "no such file"),
        ("read_file", {"path": "lnk"}, "symlink"),
        ("write_file", {"path": "lnk", "content": "x"}, "symlink"),
        ("write_file", {"path": "dirlink/x", "content": "x"}, "symlink"),
        ("list_files", {"path": "dirlink"}, "symlink"),
        ("unzip_file", {"path": "../x.zip"}, "leaves the workspace"),
    ],
)
async def test_path_escapes_are_refused(
    registry: ToolRegistry, tool: str, args: dict, needle: str
) -> None:
    u = "tool-escape"
    await call(registry, u, "run_shell", command="ln -sf /etc/passwd lnk; ln -sfn /etc dirlink")
    r = await call(registry, u, tool, **args)
    assert r.is_error and needle in r.content, r.content
    assert "root:x:0" not in r.content


async def test_unzip_extracts_inside_and_drops_escaping_members(
    registry: ToolRegistry, backend: Backend
) -> None:
    u = "tool-zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data/lines.txt", "a\nb\nc\n")
        z.writestr("../../escaped.txt", "nope")
        z.writestr("/abs.txt", "nope")
    await backend.put_file(u, "upload.zip", buf.getvalue())
    r = await call(registry, u, "unzip_file", path="upload.zip", destination="out")
    assert not r.is_error and "extracted 3 entries to out" in r.content
    r = await call(registry, u, "run_shell", command="find /workspace -name '*.txt' | sort")
    # zipfile strips ".." and "/" so everything lands under out/.
    assert r.content.split() == [
        "/workspace/out/abs.txt",
        "/workspace/out/data/lines.txt",
        "/workspace/out/escaped.txt",
    ]
    r = await call(registry, u, "unzip_file", path="out/data/lines.txt")
    assert r.is_error and "could not unzip" in r.content and "BadZipFile" in r.content


@pytest.fixture(scope="module")
async def package_index():
    from tests.fakes.fake_pypi import FakePackage, FakePackageIndex

    index = FakePackageIndex(
        [
            FakePackage(
                "clara-fake-greeting",
                "1.2",
                {
                    "clara_fake_greeting/__init__.py": "from clara_fake_dep import name\n"
                    "def hello():\n    return f'hello from {name()}'\n"
                },
                requires=["clara-fake-dep>=0.5"],
            ),
            FakePackage(
                "clara-fake-dep", "0.5", {"clara_fake_dep.py": "def name():\n    return 'dep'\n"}
            ),
        ]
    )
    await index.start()
    yield index
    await index.close()


@pytest.fixture
async def pip_registry(backend: Backend, package_index, sandbox_dir) -> ToolRegistry:
    reg = ToolRegistry()
    n = register_sandbox_tools(
        reg,
        SandboxManager(backend, idle_timeout=600),
        exec_timeout=10,
        pip_index_url=package_index.url,
        pip_cache_dir=sandbox_dir / "pip",
    )
    assert n == 7
    return reg


async def test_install_package_offline_sandbox(pip_registry: ToolRegistry, package_index) -> None:
    u = "tool-pip"
    r = await call(pip_registry, u, "execute_python", code="import clara_fake_greeting")
    assert "ModuleNotFoundError" in r.content
    r = await call(pip_registry, u, "install_package", package="clara-fake-greeting>=1.0")
    assert not r.is_error, r.content
    assert "clara_fake_greeting-1.2-py3-none-any.whl" in r.content
    assert "clara_fake_dep-0.5-py3-none-any.whl" in r.content  # the dependency came too
    # The host fetched them; the sandbox itself still has no network.
    assert "/files/clara_fake_greeting-1.2-py3-none-any.whl" in package_index.requests
    code = (
        "import clara_fake_greeting, socket\nprint(clara_fake_greeting.hello())\n"
        f"try:\n    socket.create_connection(('127.0.0.1', {package_index.port}), timeout=2)\n"
        "    print('online')\nexcept OSError:\n    print('offline')\n"
    )
    r = await call(pip_registry, u, "execute_python", code=code)
    assert r.content == "hello from dep\noffline\n"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("--index-url=http://evil.example/simple", "is not a package name"),
        ("-r /etc/shadow", "is not a package name"),
        ("pkg @ https://evil.example/pkg.whl", "URLs are not allowed"),
        ("not a requirement!", "not a valid package requirement"),
        ("clara-fake-missing", "was not found on the package index"),
    ],
)
async def test_install_package_refuses_bad_input(pip_registry: ToolRegistry, spec, needle) -> None:
    r = await call(pip_registry, "tool-pip-bad", "install_package", package=spec)
    assert r.is_error and needle in r.content, r.content
