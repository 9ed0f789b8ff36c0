"""Early checks of what a run is given: a parameter of the wrong type, an output folder that cannot be
written, a notebook parameter the notebook does not have. Each fails with one message naming the parameter,
before any attack runs."""

from __future__ import annotations

import ast
import dataclasses
import os
import tempfile
from pathlib import Path

__all__ = ["check_types", "known_fields", "writable_dir", "check_notebook_parameters", "parameters_of"]


def _accepts(annotation: str, value) -> bool:
    """Whether ``value`` fits a (string) annotation such as ``int``, ``list[int] | None`` or ``float``."""
    for option in (a.strip() for a in annotation.split("|")):
        base = option.split("[")[0]
        if base == "None" and value is None:
            return True
        if base == "bool" and isinstance(value, bool):
            return True
        if base == "int" and isinstance(value, int) and not isinstance(value, bool):
            return True
        if base == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if base == "str" and isinstance(value, str):
            return True
        if base in ("list", "tuple") and isinstance(value, (list, tuple)):
            return True
        if base == "dict" and isinstance(value, dict):
            return True
        if base in ("object", "Any"):
            return True
    return False


def check_types(obj) -> None:
    """Raise ``TypeError`` naming the first field of the dataclass ``obj`` whose value does not fit its type."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        if not _accepts(annotation, value):
            raise TypeError(f"parameter {f.name!r} must be {annotation}, got {value!r} ({type(value).__name__})")


def known_fields(cls, params: dict) -> dict:
    """``params`` if every key is a field of the dataclass ``cls``; else one error naming the first unknown one."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}; known parameters: {sorted(known)}")
    return params


def writable_dir(path: str | os.PathLike, name: str = "out_dir") -> Path:
    """Check, without creating anything, that the folder ``path`` is or can be made and written (by a test file
    in it or in its nearest existing parent, removed at once); the error names ``name``."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{name} {str(folder)!r} exists and is not a folder")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is a file")
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".gifd-write-check-"):
            pass
    except OSError as err:
        raise ValueError(f"{name} {str(folder)!r} cannot be written: {err.strerror or err}") from None
    return folder


# ------------------------------------------------------------------------------------------------------------
# notebooks

PARAMETERS_MARK = "# Parameters (papermill injects overrides after this cell)"
INJECTED_MARK = "# Parameters\n"  # the first line of the cell papermill injects


def parameters_of(source: str) -> dict[str, object]:
    """The names a notebook's parameters cell assigns, with their default values (``...`` when not a literal)."""
    out = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    try:
                        out[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        out[target.id] = ...
    return out


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def check_notebook_parameters(history: list[str] | None = None) -> None:
    """Refuse a notebook parameter that papermill injected but the notebook does not know (papermill itself only
    warns and runs the defaults), or whose kind differs from its default's (``-p budget abc``: a string for a
    number). Call it in the first cell after the parameters cell; ``history``: the cells run so far (IPython's
    ``In``, read from the running kernel by default)."""
    if history is None:
        from IPython import get_ipython

        shell = get_ipython()
        history = list(shell.user_ns.get("In", [])) if shell is not None else []
    marks = [i for i, cell in enumerate(history) if cell.lstrip().startswith(PARAMETERS_MARK)]
    if not marks:
        return
    defaults = parameters_of(history[marks[-1]])
    injected: dict[str, object] = {}
    for cell in history[marks[-1] + 1 : -1]:  # papermill's cells between the parameters cell and this one
        if cell.startswith(INJECTED_MARK):
            injected.update(parameters_of(cell))
    for name, value in injected.items():
        if name not in defaults:
            raise NameError(f"unknown notebook parameter {name!r}; this notebook's parameters are {sorted(defaults)}")
        default = defaults[name]
        if default is None or default is ... or value is ...:
            continue
        if _kind(default) != _kind(value):
            raise TypeError(f"notebook parameter {name!r} must be a {_kind(default)} like its default {default!r}, "
                            f"got {value!r}")  # fmt: skip
