"""The CLI and the benchmark as packages: no import circle, and nothing imports upward.

Every import counts, those inside functions too: a lazy import still ties two modules
together (the old cli.py, cli_client.py, cli_models.py, bench.py and bench_gpu.py
imported each other in a circle, partly lazily).
"""

from __future__ import annotations

import ast
from pathlib import Path

from voicebrush_testing import ROOT, parse_python

PACKAGE_DIR = ROOT / "daemon" / "voicebrush_daemon"
COMMANDS = ("serve", "generate", "transcribe", "dictate", "history", "models", "bench")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(parse_python(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(base + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base for alias in node.names]
            for target in targets:
                while target and target not in files and "." in target:
                    target = target.rpartition(".")[0]
                if target in files and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_daemon_has_no_import_circle():
    graph = import_graph()
    assert "voicebrush_daemon.cli.serve" in graph and "voicebrush_daemon.bench.gpu" in graph
    assert cycles(graph) == []


def test_one_module_per_command_and_nothing_imports_upward():
    graph = import_graph()
    cli = "voicebrush_daemon.cli"
    for command in COMMANDS:
        assert f"{cli}.{command}" in graph, command
    for name, imports in graph.items():
        if name == cli:
            continue  # the top: it assembles the commands
        if not name.startswith(cli + "."):
            # Below the CLI nothing knows it (the entry point `python -m voicebrush_daemon` aside).
            assert name == "voicebrush_daemon.__main__" or not any(i == cli or i.startswith(cli + ".") for i in imports), name
            continue
        assert cli not in imports, f"{name} imports the CLI package above it"
        if name.rpartition(".")[2] in COMMANDS:
            others = {i for i in imports if i.rpartition(".")[2] in COMMANDS and i.startswith(cli + ".")}
            assert not others, f"{name} imports another command: {others}"
    # The measuring lives below the CLI: the bench package never reaches up into it.
    assert not any(i.startswith(cli) for name, imports in graph.items() if name.startswith("voicebrush_daemon.bench") for i in imports)
    # And the server lifecycle is the server's: the CLI calls it, not the other way round.
    assert "voicebrush_daemon.server.runner" in graph[f"{cli}.serve"] or "voicebrush_daemon.server.runner" in set().union(*(graph[n] for n in graph if n.startswith(cli)))
