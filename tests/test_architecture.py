"""The arrows between the packages (DESIGN.md §7), read from the source with `ast`.

    loadmgmt  <-  csms  <-  adapters  ->  simulators

`loadmgmt` is the pure core: it imports nothing of ours above it and does no I/O. `csms` may
import `loadmgmt`, never `adapters` or `simulators`. `adapters` may import everything (the
`loadstar` command in `adapters/cli` is the composition root) but never talks OCPP itself.
`simulators` are a third-party charger: OCPP message code, a websocket client and the standard
library. Every import counts, wherever it is: module level, inside a function, under
`if TYPE_CHECKING:`, relative, or `importlib.import_module("...")` with a literal name.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("loadmgmt", "csms", "adapters", "simulators")


@dataclass(frozen=True)
class Import:
    """One import statement (or literal dynamic import) in one file."""

    path: Path
    line: int
    source: str
    modules: tuple[str, ...]  # every absolute module name it may load

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}: {self.source}"


def _package_of(path: Path) -> list[str]:
    """The dotted package a file belongs to, as parts (what `from . import x` is relative to)."""
    return list(path.relative_to(ROOT).parent.parts)


def _dynamic_name(node: ast.Call) -> str | None:
    """The literal module name of `importlib.import_module("x")` or `__import__("x")`."""
    func = node.func
    called = func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)
    if called not in ("import_module", "__import__") or not node.args:
        return None
    arg = node.args[0]
    return arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None


def imports_in(path: Path, text: str | None = None) -> Iterator[Import]:
    """Every import anywhere in the file, with relative names made absolute."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    package = _package_of(path)
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            # `from pkg import name` may load the submodule pkg.name: count both.
            modules = [module] + [f"{module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Call) and (name := _dynamic_name(node)):
            modules = [name]
        if modules:
            yield Import(path, node.lineno, ast.unparse(node), tuple(m for m in modules if m))


def files_of(package: str) -> list[Path]:
    files = sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)
    assert files, f"no Python files under {package}/: the architecture test would check nothing"
    return files


def within(module: str, names: set[str]) -> bool:
    """Whether `module` is one of `names` or inside one of them."""
    return any(module == n or module.startswith(n + ".") for n in names)


def violations(package: str, bad: Callable[[str], bool]) -> list[str]:
    return [str(imp) for path in files_of(package) for imp in imports_in(path)
            if any(bad(module) for module in imp.modules)]


def report(rule: str, found: list[str]) -> str:
    return rule + ":\n  " + "\n  ".join(found)


# -- the arrows ----------------------------------------------------------------------------------

def test_loadmgmt_imports_none_of_csms_adapters_simulators() -> None:
    found = violations("loadmgmt", lambda m: within(m, {"csms", "adapters", "simulators"}))
    assert not found, report("loadmgmt is the pure core and imports nothing above it", found)


def test_csms_imports_neither_adapters_nor_simulators() -> None:
    found = violations("csms", lambda m: within(m, {"adapters", "simulators"}))
    assert not found, report(
        "csms must not import adapters or simulators (only adapters/cli composes them)", found)


SIMULATOR_ALLOWED = {"ocpp", "websockets", "simulators"} | set(sys.stdlib_module_names)


def test_simulators_import_only_ocpp_websockets_and_the_standard_library() -> None:
    found = violations("simulators", lambda m: m.split(".")[0] not in SIMULATOR_ALLOWED)
    assert not found, report(
        "simulators are a third-party charger: ocpp, websockets and the standard library only",
        found)


def test_adapters_do_not_talk_ocpp() -> None:
    found = violations("adapters", lambda m: within(m, {"ocpp", "websockets", "csms.ocpp"}))
    assert not found, report("adapters ask csms services; they do not speak OCPP", found)


# -- loadmgmt does no I/O --------------------------------------------------------------------------

IO_MODULES = {
    "asyncio", "socket", "ssl", "select", "selectors", "socketserver", "sqlite3", "aiosqlite",
    "websockets", "pathlib", "io", "os", "shutil", "tempfile", "glob", "fileinput", "dbm",
    "shelve", "subprocess", "multiprocessing", "threading", "concurrent", "signal", "urllib",
    "http", "requests", "httpx", "aiohttp", "logging", "structlog", "time.sleep",
}
IO_BUILTINS = {"open", "print", "input", "breakpoint"}


def io_calls_in(path: Path, text: str | None = None) -> Iterator[str]:
    """Calls of the I/O builtins and of `time.sleep`."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (isinstance(func, ast.Name) and func.id in IO_BUILTINS) or (
                isinstance(func, ast.Attribute) and func.attr == "sleep"
                and isinstance(func.value, ast.Name) and func.value.id == "time"):
            yield f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}"


def test_loadmgmt_imports_no_io() -> None:
    found = violations("loadmgmt", lambda m: within(m, IO_MODULES))
    assert not found, report(
        "loadmgmt does no I/O: it is given a snapshot and returns a plan", found)


def test_loadmgmt_calls_no_io_builtins() -> None:
    found = [call for path in files_of("loadmgmt") for call in io_calls_in(path)]
    assert not found, report(
        "loadmgmt does no I/O (no open/print/input/breakpoint/time.sleep)", found)


# -- the checker sees what it must see -------------------------------------------------------------

SAMPLE = '''
from __future__ import annotations
from typing import TYPE_CHECKING
import importlib
from . import sibling
from ..csms import service
if TYPE_CHECKING:
    from simulators.fleet import Fleet
def f():
    import adapters.cli
    importlib.import_module("websockets.client")
    with open("x") as fh:
        time.sleep(fh.read())
'''


def test_the_checker_sees_local_relative_guarded_and_dynamic_imports_and_io_calls() -> None:
    path = ROOT / "loadmgmt" / "sample.py"
    loaded = {m for imp in imports_in(path, SAMPLE) for m in imp.modules}
    assert {"loadmgmt.sibling", "csms.service", "simulators.fleet", "adapters.cli",
            "websockets.client"} <= loaded
    calls = sorted(c.split(": ", 1)[1] for c in io_calls_in(path, SAMPLE))
    assert calls == ["open('x')", "time.sleep(fh.read())"]
