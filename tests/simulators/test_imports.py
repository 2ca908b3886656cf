"""Simulators speak OCPP like a third-party charger: they import no Loadstar code."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOWED = {"ocpp", "websockets", "simulators"} | set(sys.stdlib_module_names)


def test_simulators_import_only_ocpp_websockets_and_the_standard_library() -> None:
    root = Path(__file__).resolve().parents[2] / "simulators"
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] in ALLOWED, f"{path.name} imports {name}"
