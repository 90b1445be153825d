"""The command line, the HTTP service, the MCP server and the Turbine export
are adapters over the core (issue 21): exit codes and result printing live in
``line_connector.output``, below all four. This walks every import statement
of their modules (at the top or inside a function: a lazy import is still a
dependency). The command line is the program's entry point, so it may start
the others (`serve`, `mcp`, `export`); nothing imports the command line back,
and the other three never import one another: no import circle."""
import ast
import os

import line_connector

PACKAGE = os.path.dirname(line_connector.__file__)
#: module -> the part of the pack it belongs to
ADAPTERS = {"cli": "line_connector/cli.py", "service": "line_connector/service",
            "mcp_server": "line_connector/mcp_server.py", "turbine": "line_connector/turbine.py"}


def _files(adapter):
    path = os.path.join(os.path.dirname(PACKAGE), ADAPTERS[adapter])
    if os.path.isdir(path):
        return [os.path.join(path, f) for f in sorted(os.listdir(path)) if f.endswith(".py")]
    return [path]


def _module_name(path):
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
    return rel[:-len(".__init__")] if rel.endswith(".__init__") else rel


def _imported(path, module=None):
    """Every absolute module name this file imports (relative ones resolved
    against ``module``, the file's own dotted name: found from its path)."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    here = (module or _module_name(path)).split(".")
    package = here if path.endswith("__init__.py") else here[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names.update("%s.%s" % (module, alias.name) for alias in node.names)
    return names


def _adapter_of(module):
    parts = module.split(".")
    if parts[0] != "line_connector" or len(parts) < 2:
        return None
    return parts[1] if parts[1] in ADAPTERS else None


def _edges():
    """{(adapter, other adapter)} -> the file and module that make the edge."""
    edges = {}
    for adapter in ADAPTERS:
        for path in _files(adapter):
            for module in _imported(path):
                other = _adapter_of(module)
                if other is not None and other != adapter:
                    edges.setdefault((adapter, other), "%s imports %s" % (
                        os.path.relpath(path, os.path.dirname(PACKAGE)), module))
    return edges


def test_nothing_imports_the_command_line():
    """Exit codes and printing used to come from cli.py, which imported the
    servers back: the circle issue 21 names."""
    bad = sorted(why for (_src, dst), why in _edges().items() if dst == "cli")
    assert bad == []


def test_no_import_circle():
    graph = {}
    for src, dst in _edges():
        graph.setdefault(src, set()).add(dst)

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, seen + (n,))) for n in graph.get(start, ()))

    assert [a for a in ADAPTERS if reaches(a, a)] == []
    assert ("cli", "service") in _edges()  # the walker does see the command line's own imports


def test_the_walker_sees_a_lazy_import_of_another_adapter(tmp_path):
    """The check would catch the old layout (an import inside a function)."""
    probe = tmp_path / "probe.py"
    probe.write_text("def command(args):\n    from ..cli import EXIT_OK\n    return EXIT_OK\n", encoding="utf-8")
    found = {m for m in _imported(str(probe), "line_connector.service.probe")
             if _adapter_of(m) not in (None, "service")}
    assert "line_connector.cli" in found


def test_exit_codes_and_printing_come_from_the_core():
    from line_connector import cli, output

    assert (cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_INPUT) == (0, 1, 2)
    assert cli._print_json is output.print_json
    for adapter in ("mcp_server", "turbine", "service"):
        imported = set().union(*(_imported(p) for p in _files(adapter)))
        assert "line_connector.output" in imported, adapter


def test_the_servers_and_the_export_never_import_one_another():
    """The HTTP service, the MCP server and the Turbine export share code
    only through the core (the OpenAPI document once borrowed the MCP
    server's schema resolver: it now lives in ``schema_views``)."""
    edges = _edges()
    bad = sorted(why for (src, dst), why in edges.items() if src != "cli")
    assert bad == []
