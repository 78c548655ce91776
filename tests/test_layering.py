"""The layering rules of docs/DESIGN.md, section 2, enforced on the source.

* ``hw_export`` never imports ``dpap_neuro``.
* Inside ``hw_export``, only ``hw_export/norse/`` imports torch or norse: the
  rest (SparseNet, HDF5, quantization, Lava, netx, NIR, counting, energy)
  runs on plain arrays.
* Lava is imported lazily (inside functions) everywhere but in
  ``hw_export/lava_procs``, which is itself only imported lazily; so
  ``dpap_neuro`` trains where Lava is not installed.

Checked twice: statically (every import statement, also those inside
functions) and by importing the modules in a fresh interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NORSE_BOUNDARY = "hw_export.norse"
LAVA_PROCESSES = "hw_export.lava_procs"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at module level?) for every import statement in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, top_level: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                found.extend((alias.name, top_level) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:  # relative: resolve against this module's package (never in tmp files)
                    base = module_name(path).rsplit(".", child.level)[0]
                    found.append((f"{base}.{child.module}" if child.module else base, top_level))
                else:
                    found.append((child.module, top_level))
            nested = isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, top_level and not nested)

    visit(tree, True)
    return found


def root_of(name: str) -> str:
    return name.split(".")[0]


def in_norse_boundary(name: str) -> bool:
    return name == NORSE_BOUNDARY or name.startswith(NORSE_BOUNDARY + ".")


def test_the_checker_sees_nested_and_top_level_imports(tmp_path):
    sample = tmp_path / "probe.py"
    sample.write_text("import numpy\nfrom torch import nn\n\nclass A:\n    def f(self):\n        import lava.magma\n")
    assert imports(sample) == [("numpy", True), ("torch", True), ("lava.magma", False)]


@pytest.mark.parametrize("path", modules("hw_export"), ids=lambda p: module_name(p))
def test_hw_export_never_imports_dpap_neuro(path):
    offending = [name for name, _ in imports(path) if root_of(name) == "dpap_neuro"]
    assert not offending, f"{module_name(path)} imports {offending}"


@pytest.mark.parametrize("path", modules("hw_export"), ids=lambda p: module_name(p))
def test_only_the_norse_package_imports_torch_or_norse(path):
    if in_norse_boundary(module_name(path)):
        return
    offending = [name for name, _ in imports(path) if root_of(name) in ("torch", "norse")]
    assert not offending, f"{module_name(path)} imports {offending}; Norse reading lives in {NORSE_BOUNDARY}"


@pytest.mark.parametrize("path", modules("hw_export") + modules("dpap_neuro"), ids=lambda p: module_name(p))
def test_lava_is_imported_lazily(path):
    name = module_name(path)
    if name.startswith(LAVA_PROCESSES):
        return  # Lava Processes and ProcessModels; nothing imports this package at module level
    eager = [imported for imported, top_level in imports(path)
             if top_level and (root_of(imported) == "lava" or imported.startswith(LAVA_PROCESSES))]
    assert not eager, f"{name} imports {eager} at module level; import Lava inside the function that needs it"


def test_importing_the_hardware_side_loads_no_torch_norse_lava_or_dpap_neuro():
    names = [module_name(p) for p in modules("hw_export")
             if not in_norse_boundary(module_name(p)) and not module_name(p).startswith(LAVA_PROCESSES)]
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names)
            + "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'norse', 'lava', 'dpap_neuro'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_importing_the_training_side_loads_no_lava():
    names = [module_name(p) for p in modules("dpap_neuro")]
    code = ("import sys\n" + "".join(f"import {n}\n" for n in names)
            + "print('lava' in {m.split('.')[0] for m in sys.modules})")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


MAX_FUNCTION_LINES = 60


@pytest.mark.parametrize("path", modules("hw_export") + modules("dpap_neuro"), ids=lambda p: module_name(p))
def test_no_function_is_longer_than_60_lines(path):
    """A newcomer reads a function at a glance (docs/DESIGN.md, section 2); docstrings count, blank lines too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)" for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"{module_name(path)}: {', '.join(long)}"
