"""The type stub `jaxwsi/_native.pyi` declares exactly what the native module exports."""

from __future__ import annotations

import ast
from pathlib import Path

import jaxwsi
from jaxwsi import _native

STUB = Path(jaxwsi.__file__).with_name("_native.pyi")


def _stub_names() -> dict[str, ast.AST]:
    tree = ast.parse(STUB.read_text())
    names: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
    return names


def _stub_parameters(node: ast.FunctionDef) -> list[str]:
    args = node.args
    return [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg != "self"]


def test_stub_declares_every_export_and_nothing_else() -> None:
    exported = {name for name in dir(_native) if not name.startswith("__")} | {"__version__"}
    declared = {name for name in _stub_names() if name not in ("Path", "FeatureSpec", "Records")}
    assert declared == exported


def _native_parameters(obj: object) -> list[str]:
    """Parameter names of a native function, method or class constructor."""
    text = obj.__text_signature__  # pyo3 records it for functions, methods and #[new]
    assert text is not None, obj
    parts = [p.strip().split("=")[0] for p in text.strip("()").split(",")]
    return [p for p in parts if p not in ("*", "/", "$self", "")]


def _is_property(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def test_stub_signatures_match_the_native_ones() -> None:
    for name, node in _stub_names().items():
        obj = getattr(_native, name)
        if isinstance(node, ast.FunctionDef):
            assert _stub_parameters(node) == _native_parameters(obj), name
        elif isinstance(node, ast.ClassDef):
            for method in node.body:
                if not isinstance(method, ast.FunctionDef) or _is_property(method):
                    continue
                if method.name == "__init__":
                    native = _native_parameters(obj)
                elif method.name.startswith("__"):
                    continue
                else:
                    native = _native_parameters(getattr(obj, method.name))
                assert _stub_parameters(method) == native, f"{name}.{method.name}"
