"""The package's layout holds: the layers of .importlinter point down, no two modules import each
other (directly or round a circle, lazily inside a function included), and cli.py is the only
module that knows click."""
import subprocess
import sys

import grimp

from conftest import BIN, REPO


def test_the_layers_point_down():
    done = subprocess.run([str(BIN / "lint-imports"), "--config", str(REPO / ".importlinter")], cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def circles(graph):
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(module):
        index[module] = low[module] = counter[0]
        counter[0] += 1
        stack.append(module)
        on_stack.add(module)
        for other in graph.find_modules_directly_imported_by(module):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_import_circles():
    graph = grimp.build_graph("retrainctl", cache_dir=None)
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(name)
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p.c")
    graph.add_import(importer="p.c", imported="p.a")
    assert circles(graph) == [["p.a", "p.b", "p.c"]]


def test_only_cli_imports_click():
    package = REPO / "retrainctl"
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                   if "import click" in p.read_text() or "from click" in p.read_text())
    assert users == ["cli.py"]


def test_every_subpackage_says_what_it_holds():
    package = REPO / "retrainctl"
    for init in package.glob("*/__init__.py"):
        text = init.read_text()
        assert text.startswith('"""') and len(text.split('"""')[1].split()) >= 8, init
