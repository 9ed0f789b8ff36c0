"""The three ways to install (venv via the Makefile, conda/Binder, Docker) use the same pins; the notebooks
keep the papermill contract and are stored without outputs."""

import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = ("dataset", "data_root", "indices", "batch_size", "budget", "methods", "seed", "device", "out_dir")


def _pins(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def test_requirements_are_pinned():
    for line in _pins(ROOT / "requirements.txt") + _pins(ROOT / "requirements-nodeps.txt"):
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.]*", line), line


def test_environment_yml_has_exactly_the_requirements():
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:")[1]
    listed = [ln.strip()[2:] for ln in pip_section.splitlines() if ln.strip().startswith("- ")]
    assert listed == _pins(ROOT / "requirements.txt")
    assert "python=3.11" in text
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -r requirements-nodeps.txt" in post


def test_dockerfile_and_makefile_install_the_same_files():
    docker = (ROOT / "Dockerfile").read_text()
    make = (ROOT / "Makefile").read_text()
    for text in (docker, make):
        assert "pip install" in text and "-r requirements.txt" in text
        assert "--no-deps -r requirements-nodeps.txt" in text
    assert "FROM python:3.11" in docker


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    assert "make figures" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_every_number_table_the_readme_quotes_is_a_row_of_a_committed_table():
    """A README table row with results (mean ± std, or a paired 95 % CI) must carry the numbers of one row of a
    table a command wrote under figures/ (bold, renamed rows and dropped columns allowed), so no result is typed
    in by hand or left behind when its figure is regenerated."""
    numbers = re.compile(r"-?\d+\.\d+ ± \d+\.\d+|\[[+-]?\d+\.\d+, [+-]?\d+\.\d+\]")
    rows = [ln.replace("**", "") for p in (ROOT / "figures").rglob("*.md") for ln in p.read_text().splitlines()]
    quoted = [ln for ln in (ROOT / "README.md").read_text().splitlines() if ln.startswith("|")]
    checked = 0
    for line in quoted:
        found = numbers.findall(line.replace("**", ""))
        if found:
            checked += 1
            assert any(all(x in row for x in found) for row in rows if row.startswith("|")), f"no table has {line}"
    assert checked >= 10


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stripped_and_parameterised(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "run `make strip`"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one papermill 'parameters' cell"
    names = set(re.findall(r"^(\w+)\s*=", tagged[0].source, flags=re.M))
    # experiment notebooks (numbered) follow the full contract; the others at least name data, seed and output
    needed = CONTRACT if path.name[0].isdigit() else ("dataset", "data_root", "indices", "seed", "device", "out_dir")
    if "batch_sizes" in names:  # 05 compares several batch sizes
        needed = tuple(n for n in needed if n != "batch_size")
    assert set(needed) <= names, f"missing parameters: {sorted(set(needed) - names)}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_parameter_reaches_the_code(path):
    """A parameter that no later cell reads is silently ignored (01's generator once was): each name the
    parameters cell assigns must be read by a later code cell, and the first one refuses unknown names."""
    import ast

    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    first = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    names = set(re.findall(r"^(\w+)\s*=", code[first].source, flags=re.M))
    read = {node.id for c in code[first + 1 :] for node in ast.walk(ast.parse(c.source))
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}  # fmt: skip
    assert not names - read, f"parameters never read: {sorted(names - read)}"
    assert "check_notebook_parameters()" in code[first + 1].source


def test_every_notebook_has_test_parameters_and_figure_runs_are_known():
    runs = json.loads((ROOT / "notebooks" / "runs.json").read_text())
    assert {p.name for p in NOTEBOOKS} == set(runs["test"])
    for table in ("figures", "data"):
        for name, spec in runs[table].items():
            assert (ROOT / "notebooks" / spec["notebook"]).is_file(), name
            assert spec["parameters"]["out_dir"].startswith("figures/"), name


def test_every_figure_run_sets_only_parameters_its_notebook_has():
    """A run in runs.json that names a parameter its notebook lacks would fail only when someone runs it (hours
    later, on another machine): catch it here."""
    import nbformat

    from gifd.checks import parameters_of

    runs = json.loads((ROOT / "notebooks" / "runs.json").read_text())
    for table in ("figures", "data"):
        for name, spec in runs[table].items():
            nb = nbformat.read(ROOT / "notebooks" / spec["notebook"], as_version=4)
            cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
            unknown = set(spec["parameters"]) - set(parameters_of(cell.source))
            assert not unknown, f"{table}/{name}: {spec['notebook']} has no parameter {sorted(unknown)}"
