"""The layers of the house, read from the source: imports point down only, and nothing hides a cycle
in an import inside a function.

    tasks (Huey), views, apps           interfaces: they call services
    services and selectors              billing.ledger, payments, refunds, ..., alerts.notifications
    bottom                              billing.models, errors, stripe_gateway, formatting, background
"""

import ast
import re
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


# One home for formatting: billing.formatting converts to local time and owns every format.


def product_sources():
    """(name, path, syntax tree) of every non-test module, formatting itself left out."""
    for name, path in sorted(project_modules(ROOT, APPS).items()):
        if not is_test_module(name) and name != "billing.formatting":
            yield name, path, ast.parse(path.read_text())


def date_formatting_in(tree):
    """Lines that format a date or time by hand: a .strftime() call, or an f-string with a %-format
    ({moment:%d %b})."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "strftime":
            yield node.lineno
        if isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            spec = "".join(part.value for part in node.format_spec.values if isinstance(part, ast.Constant))
            if "%" in spec:
                yield node.lineno


def test_no_module_formats_dates_by_hand():
    offenders = {f"{name}:{line}" for name, _, tree in product_sources() for line in date_formatting_in(tree)}
    assert offenders == set()


def test_no_table_formats_dates_with_its_own_column_format():
    # django-tables2's DateTimeColumn/DateColumn take their own format string: portal.tables'
    # DayColumn and WhenColumn format through billing.formatting instead.
    offenders = {
        f"{name}:{node.lineno}"
        for name, _, tree in product_sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in {"DateTimeColumn", "DateColumn", "TimeColumn"}
    }
    assert offenders == set()


def test_no_template_formats_dates_itself():
    pattern = re.compile(r"\|\s*(date|time)\b|{%\s*now\b")
    offenders = {
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "templates").rglob("*"))
        if path.suffix in {".html", ".txt"}
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    }
    assert offenders == set()


def divisions_by_100_in(tree):
    """Lines that divide by 100: cents / 100 is a float in Python."""
    for node in ast.walk(tree):
        divides = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
        if divides and isinstance(node.right, ast.Constant) and node.right.value == 100:
            yield node.lineno


def test_no_money_passes_through_a_float():
    # Amounts become text through billing.formatting, in Decimals.
    offenders = {f"{name}:{line}" for name, _, tree in product_sources() for line in divisions_by_100_in(tree)}
    assert offenders == set()


def test_the_checks_above_see_what_they_look_for():
    hand_made = ast.parse('label = f"{moment:%d %b}"\nstamp = moment.strftime("%H:%M")\nshown = cents / 100\n')
    assert sorted(date_formatting_in(hand_made)) == [1, 2]
    assert list(divisions_by_100_in(hand_made)) == [3]
