"""The shape of the code: no import cycles, imports at the top (except the few that say why),
error classes only in errors.py, small modules, and a wheel that ships only the product."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mailq", "console")
MAX_LINES = 420  # "about 400": room for a merge, not for a second job in one module
# Imports inside functions, each for a reason (module -> what it imports).
LATE_IMPORTS = {
    ("mailq.cli.console_cmd", "console.app"): "Textual loads only for `mailq console`",
    ("mailq.cli.console_cmd", "console.source"): "Textual loads only for `mailq console`",
    ("console.screens.failed", "console.screens.failed_detail"): "the detail screen imports the list's actions",
    ("console.screens.mailboxes", "console.screens.mailbox_detail"): "the detail screen imports the list's actions",
    ("mailq.oauth.tokens", "mailq.oauth.client"): "authlib and requests (a quarter of start-up imports) load only to fetch a token",
    ("mailq.mailboxes", "mailq.oauth.client"): "authlib and requests load only for OAuth2 work",
    ("mailq.cli.mailbox_cmd", "mailq.oauth.consent"): "authlib and requests load only for OAuth2 work",
    ("mailq.cli.process_cmd", "mailq.push.idler"): "each farm process loads only the engine it runs (start-up time)",
    ("mailq.cli.process_cmd", "mailq.exporter"): "each farm process loads only the engine it runs (start-up time)",
    ("mailq.storage", "mailq.storage_s3"): "S3 needs the optional boto3 (extra s3), and storage_s3 imports storage",
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported module of ours, at top level?) for every import in ``module`` that runs
    (``if TYPE_CHECKING:`` blocks never do)."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    typing_only = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only |= set(map(id, node.body))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    result = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = (
                ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else [])) if node.level else node.module
            )
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        if id(node) in typing_only:
            continue
        for name in names:
            if name in known and name != module:
                result.append((name, id(node) in top))
                break
    return result


def test_no_import_cycles():
    known = _modules()
    graph = {m: {t for t, at_top in _imports(m, p, known) if at_top} for m, p in known.items()}
    # a package's __init__ importing its own submodules is how packages work, not a cycle
    graph = {m: {t for t in deps if not t.startswith(m + ".")} for m, deps in graph.items()}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(m: str, trail: list[str]) -> bool:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle.extend([*trail[trail.index(t) :], t] if t in trail else [m, t])
                return True
            if t not in state and visit(t, [*trail, t]):
                return True
        state[m] = 2
        return False

    for m in sorted(graph):
        if m not in state and visit(m, [m]):
            break
    assert not cycle, " -> ".join(cycle)


def test_imports_are_at_the_top_except_the_few_that_say_why():
    known = _modules()
    late = {(m, t) for m, p in known.items() for t, at_top in _imports(m, p, known) if not at_top}
    assert late == set(LATE_IMPORTS), f"unexpected: {sorted(late - set(LATE_IMPORTS))}, gone: {sorted(set(LATE_IMPORTS) - late)}"


def test_error_classes_are_declared_in_errors_py():
    strays = []
    for module, path in _modules().items():
        if module == "mailq.errors":
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith(("Error", "Exception")) for b in node.bases):
                strays.append(f"{module}.{node.name}")
    assert not strays


@pytest.mark.parametrize("folder", ["mailq", "console", "tests", "scripts"])
def test_no_module_is_over_about_400_lines(folder):
    paths = [p for p in (ROOT / folder).rglob("*") if p.is_file() and (p.suffix == ".py" or p.parent.name == "scripts")]
    sizes = {str(p.relative_to(ROOT)): len(p.read_text(errors="replace").splitlines()) for p in paths if "__pycache__" not in p.parts}
    assert not {name: n for name, n in sizes.items() if n > MAX_LINES}


def test_the_wheel_ships_only_the_product(tmp_path):
    source = tmp_path / "src"  # a copy: building in place would leave build/ and *.egg-info in the tree
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "var", "__pycache__", "build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("mailq-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"mailq", "console"}
    assert not [n for n in names if any(word in n for word in ("test", "chaos", "bench", "fixture", "testbed"))]


def test_the_farm_processes_start_without_the_operator_commands_rich_or_oauth_libraries():
    """Eight Procfile processes import at once on two cores before the first poll: each loads only what it runs."""
    probe = (
        "import sys, mailq.cli as c; c.build_parser(only_processes=True); import mailq.worker, mailq.scheduler; "
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('rich', 'textual', 'authlib', 'requests', 'boto3') "
        "or m.startswith(('mailq.ops', 'mailq.cli.')) and m not in ('mailq.cli.boot', 'mailq.cli.process_cmd'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert loaded == []
