"""The layers point one way, and nothing outside ``models/`` names a family member (docs/architecture.md).
Read from the sources with ``ast``: every import counts, including those inside functions."""
import ast
import functools
from pathlib import Path

import pytest

from aezoo.registry import get, list_models

SRC = Path(__file__).resolve().parents[1] / "src" / "aezoo"
# modules every layer may import: the package's own foundations
BASE = {"errors", "config", "utils", "trainable", "registry"}
# layer -> the layers it may import (besides itself and BASE). "models" means models.base and the
# members' shared modules; "train.checkpoint" is the run folder's file format.
ALLOWED = {
    "data": set(),
    "nn": set(),
    "models": {"nn", "train.checkpoint"},  # checkpoint: the code prior's own files (models/code_prior.py)
    "train": {"data"},
    "evaluate": {"data", "nn", "models", "search", "compress"},
    "search": {"data", "models", "runs"},
    "compress": {"models", "nn"},  # nn: the range coder's precision (nn/entropy.py), shared with the entropy models
    "runs": {"data", "nn", "models", "train"},  # opens a trained run: the one reader of train/ below the CLI (issue 23)
}
# who may import train/ at all (issue 23): the loop itself, runs/ (opening a run), run.py (training
# around the loop), the CLI; and models/code_prior.py, which writes the prior's files in the run format
TRAIN_IMPORTERS = {"train", "runs", "run", "commands", "cli"}


@functools.cache
def parsed(f: Path) -> ast.Module:
    return ast.parse(f.read_text())


def modules():
    for f in sorted(SRC.rglob("*.py")):
        parts = f.relative_to(SRC.parent).with_suffix("").parts
        is_pkg = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_pkg else parts)
        yield f, name, name if is_pkg else name.rsplit(".", 1)[0]


@functools.cache
def imports(f: Path, package: str) -> tuple[str, ...]:
    """Absolute names of the aezoo modules (and imported members) ``f`` imports."""
    return tuple(_imports(f, package))


def _imports(f: Path, package: str):
    for node in ast.walk(parsed(f)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield target
            yield from (f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "aezoo"


def test_layers_point_one_way():
    bad = []
    for f, name, package in modules():
        layer = layer_of(name)
        if layer not in ALLOWED:
            continue
        allowed = ALLOWED[layer] | BASE | {layer}
        for target in imports(f, package):
            if not target.startswith("aezoo."):
                continue
            t_layer = layer_of(target)
            dotted = ".".join(target.split(".")[1:3])
            if t_layer not in allowed and dotted not in allowed:
                bad.append(f"{name} imports {target}")
    assert not bad, "imports against the layers (docs/architecture.md):\n" + "\n".join(sorted(set(bad)))


def test_nn_and_data_know_no_model_and_train_no_figures():
    """The issue's words, stated directly (the table above covers them too)."""
    for f, name, package in modules():
        targets = {layer_of(t) for t in imports(f, package) if t.startswith("aezoo.")}
        if layer_of(name) in ("nn", "data"):
            assert "models" not in targets, name
        if layer_of(name) == "train":
            assert not targets & {"viz", "evaluate", "run", "commands"}, name
            assert not any(t.startswith("aezoo.models.") and not t.startswith("aezoo.models.base") for t in imports(f, package)), name


def test_only_runs_the_training_layer_and_the_cli_import_train():
    bad = []
    for f, name, package in modules():
        if layer_of(name) in TRAIN_IMPORTERS or name == "aezoo.models.code_prior":
            continue
        bad += [f"{name} imports {t}" for t in imports(f, package) if t == "aezoo.train" or t.startswith("aezoo.train.")]
    assert not bad, "open runs through aezoo.runs (docs/architecture.md):\n" + "\n".join(sorted(set(bad)))


MEMBERS = set(list_models())
CLASS_NAMES = {get(n).__name__ for n in MEMBERS} | {get(n).Config.__name__ for n in MEMBERS}


def docstrings(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                ids.add(id(first.value))
    return ids


def test_no_module_outside_models_names_a_member():
    """No registered name as a string, no member class, no import of a member's module: code outside
    ``models/`` decides by declared capabilities (docstrings and comments may cite papers and names)."""
    bad = []
    for f, name, package in modules():
        if layer_of(name) == "models":
            continue
        tree = parsed(f)
        skip = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip and node.value in MEMBERS:
                bad.append(f"{name}:{node.lineno} the string {node.value!r}")
            elif isinstance(node, ast.Name) and node.id in CLASS_NAMES:
                bad.append(f"{name}:{node.lineno} {node.id}")
            elif isinstance(node, ast.Attribute) and node.attr in CLASS_NAMES:
                bad.append(f"{name}:{node.lineno} .{node.attr}")
        for target in imports(f, package):
            parts = target.split(".")
            if len(parts) >= 3 and parts[1] == "models" and parts[2] in MEMBERS:
                bad.append(f"{name} imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("probe", ["hasattr(model", "getattr(model", "inspect.signature(model"])
def test_no_attribute_probing_outside_models(probe):
    hits = [f"{name}:{i + 1}" for f, name, _ in modules() if layer_of(name) != "models"
            for i, line in enumerate(f.read_text().splitlines()) if probe in line]
    assert not hits, f"{probe}...) outside models/: check a declared capability instead: {hits}"
