"""The package's wiring: no import cycles, pure modules import no database or socket code, the
dialer does not import its test infrastructure, and docs/DESIGN.md maps every module."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "agi_campaign"
PURE = ("agi", "amiproto", "pacing", "lifecycle", "weektime", "phone", "originate", "dburl",
        "yamlsafe", "session", "charts", "forecast")
IMPURE = ("peewee", "playhouse", "psycopg2", "sqlite3", "socket", "socketserver", "asyncio",
          "agi_campaign.db", "agi_campaign.models")


def module_names():
    return {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PACKAGE.rglob("*.py")}


def imports_of(path):
    """Every module `path` imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update("%s.%s" % (node.module, alias.name) for alias in node.names)
    return found


def graph():
    names = module_names()
    return {name: {dep for dep in imports_of(path) if dep in names and dep != name}
            for name, path in names.items()}


def cycles(edges):
    """Each import cycle once, as a list of modules (depth-first search)."""
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for dep in sorted(edges[node]):
            if state.get(dep) == "open":
                found.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [])
    return found


def test_layout_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_layout_has_no_import_cycles():
    edges = graph()
    assert len(edges) > 20
    assert cycles(edges) == []


def test_layout_pure_modules_import_no_database_or_socket_module():
    names = module_names()
    for module in PURE:
        deps = imports_of(names["agi_campaign." + module])
        bad = sorted(d for d in deps if d.split(".")[0] in IMPURE or d in IMPURE
                     or any(d.startswith(i + ".") for i in IMPURE))
        assert bad == [], "agi_campaign.%s imports %s" % (module, bad)


def test_layout_the_dialer_does_not_import_its_test_infrastructure():
    for name, deps in graph().items():
        if not name.startswith("agi_campaign.testing") and name != "agi_campaign.commands":
            assert not [d for d in deps if d.startswith("agi_campaign.testing")], name


def test_layout_design_doc_names_every_module():
    design = (ROOT / "docs" / "DESIGN.md").read_text("utf-8")
    missing = [name for name, path in module_names().items() if path.name != "__init__.py"
               and "`%s`" % name.split(".")[-1] not in design]
    assert missing == []


def test_layout_test_modules_have_unique_names():
    """pytest imports test modules by their file name (rootdir-relative packages are absent):
    two test files of one name in different folders fail collection of the whole suite."""
    seen = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        seen.setdefault(path.name, []).append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
