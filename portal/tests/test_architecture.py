"""The layers of the house, read from the source: imports point down only, and nothing hides a cycle
in an import inside a function.

    tasks (Huey), views, apps           interfaces: they call services
    services and selectors              billing.ledger, payments, refunds, ..., alerts.notifications
    bottom                              billing.models, errors, stripe_gateway, formatting, background
"""

import ast
from pathlib import Path

import pytest
from django.conf import settings
from huey.api import TaskWrapper

from billing.background import JOBS

ROOT = Path(settings.BASE_DIR)
APPS = ("billing", "alerts", "portal")
BOTTOM = ("billing.models", "billing.errors", "billing.stripe_gateway", "billing.formatting", "billing.background")


def project_modules(root, packages):
    """{dotted name: path} of every module of `packages` under `root` (migrations left out: Django
    writes them)."""
    modules = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    return modules


def import_graph(root, packages):
    """{module: {module it imports: line}} over the project's own modules, counting every import
    statement wherever it stands (inside functions too)."""
    modules = project_modules(root, packages)

    def own(name):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = {}
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from billing import events` imports the module billing.events
                targets = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for target in targets:
                found = own(target)
                if found and found != name:
                    edges.setdefault(found, node.lineno)
        graph[name] = edges
    return graph


def import_cycles(graph):
    """Each set of modules that import one another in a ring (strongly connected components of
    more than one module), as sorted lists."""
    index, low, on_stack, stack, cycles = {}, {}, set(), [], []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.get(module, {}):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            ring = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                ring.append(member)
                if member == module:
                    break
            if len(ring) > 1:
                cycles.append(sorted(ring))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return cycles


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT, APPS)


def is_task_module(name):
    return name.rpartition(".")[2] == "tasks"


def is_test_module(name):
    return ".tests" in name


def test_the_project_has_no_import_cycle(graph):
    assert import_cycles(graph) == []


def test_no_service_imports_a_task_module(graph):
    # Tasks sit on top. Besides other tasks, only an app's loader (apps.py, which connects the
    # background jobs) and the tests may import them.
    offenders = {
        f"{module}:{line} imports {imported}"
        for module, edges in graph.items()
        for imported, line in edges.items()
        if is_task_module(imported)
        and not (is_task_module(module) or module.endswith(".apps") or is_test_module(module))
    }
    assert offenders == set()


def test_the_bottom_layer_imports_only_the_bottom_layer(graph):
    def in_bottom(name):
        return any(name == bottom or name.startswith(f"{bottom}.") for bottom in BOTTOM)

    offenders = {
        f"{module} imports {imported}"
        for module, edges in graph.items()
        if in_bottom(module)
        for imported in edges
        if not in_bottom(imported)
    }
    assert offenders == set()


def test_billing_imports_neither_the_pages_nor_the_alerts(graph):
    offenders = {
        f"{module} imports {imported}"
        for module, edges in graph.items()
        if module.startswith("billing") and not is_test_module(module)
        for imported in edges
        if imported.startswith(("portal", "alerts"))
    }
    assert offenders == set()


def test_only_the_gateway_imports_stripe():
    importers = set()
    for name, path in project_modules(ROOT, APPS).items():
        for node in ast.walk(ast.parse(path.read_text())):
            imported = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                imported = [node.module or ""]
            if any(module == "stripe" or module.startswith("stripe.") for module in imported):
                importers.add(name)
    assert importers == {"billing.stripe_gateway"}


def test_a_cycle_hidden_in_a_function_level_import_is_found(tmp_path):
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "orders.py").write_text("from shop import mail\n")
    (package / "mail.py").write_text("def send():\n    from .orders import total\n")
    (package / "prices.py").write_text("import shop.mail\n")

    graph = import_graph(tmp_path, ["shop"])

    assert graph["shop.mail"] == {"shop.orders": 2}
    assert import_cycles(graph) == [["shop.mail", "shop.orders"]]


def test_every_background_job_is_run_by_a_task():
    assert all(isinstance(job.task, TaskWrapper) for job in JOBS), [job for job in JOBS if job.task is None]
