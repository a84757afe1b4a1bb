#!/usr/bin/env python3
"""Print the crate's module dependency cycles (and counts), from `crate::`,
`super::` and `self::` paths.

Usage: python3 scripts/module-graph.py [--folders]
A module is a file under src/ (mod.rs names its folder). With --folders,
modules are grouped by their top-level folder. Exit 1 when there is a cycle.
"""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
folders = "--folders" in sys.argv

def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return rel

mods = {}
for d, _, fs in os.walk(ROOT):
    for f in fs:
        if f.endswith(".rs"):
            p = os.path.join(d, f)
            mods[tuple(module_of(p))] = p
if ("cli",) in mods or any(m[:1] == ("cli",) for m in mods):
    mods = {m: p for m, p in mods.items() if m[:1] != ("cli",)}  # the binary's own

def resolve(parts):
    """Longest known module prefix of a crate:: path."""
    for n in range(len(parts), 0, -1):
        if tuple(parts[:n]) in mods:
            return tuple(parts[:n])
    return None

def paths_in(text):
    """The paths a module's code names: `crate::a::b`, `super::x`, and each
    item of a `use` group (`use super::{a, b::c}`)."""
    # Expand `use PREFIX::{A, B::C}` groups (one level) into PREFIX::A, PREFIX::B::C.
    for prefix, group in re.findall(r"((?:crate|super|self)(?:::[a-z_]+)*)::\{([^{}]*)\}", text):
        for item in group.split(","):
            item = item.strip().split(" as ")[0]
            if item:
                yield prefix + "::" + item
    for path in re.findall(r"\b((?:crate|super|self)(?:::(?:super|[a-z_]+))+)", text):
        yield path

def absolute(m, path, is_mod):
    """A crate-relative module path for `path` as written in module `m`."""
    parts = path.split("::")
    if parts[0] == "crate":
        return parts[1:]
    base = list(m)
    if not is_mod:
        base = base[:-1]  # a file module's `super` is its folder's module
        here = list(m)
    else:
        here = list(m)
    if parts[0] == "self":
        return here + parts[1:]
    # `super`: from a file module foo/bar.rs (module foo::bar) it is foo;
    # from foo/mod.rs (module foo) it is foo's parent.
    cur = list(m)
    while parts and parts[0] == "super":
        cur = cur[:-1]
        parts = parts[1:]
    return cur + parts

graph = {m: set() for m in mods}
for m, p in mods.items():
    text = open(p).read()
    text = text.split("#[cfg(test)]")[0]
    # Comments (docs naming other modules) are not imports.
    text = re.sub(r"//[^\n]*", "", text)
    is_mod = os.path.basename(p) in ("mod.rs", "lib.rs", "main.rs")
    for path in paths_in(text):
        t = resolve(absolute(m, path, is_mod))
        if t and t != m and t[:len(m)] != m:  # a module may use its children
            graph[m].add(t)

def key(m):
    return m[:1] if folders else m

g = {}
for m, ts in graph.items():
    for t in ts:
        a, b = key(m), key(t)
        if a != b:
            g.setdefault(a, set()).add(b)
    g.setdefault(key(m), set())

# Tarjan's strongly connected components.
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
def visit(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in g.get(v, ()):
        if w not in index:
            visit(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: sccs.append(c)
sys.setrecursionlimit(10000)
for v in list(g):
    if v not in index:
        visit(v)
name = lambda m: "::".join(m) or "crate"
print(f"{len(g)} {'folders' if folders else 'modules'}, {sum(len(v) for v in g.values())} edges, {len(sccs)} cycle(s)")
for c in sccs:
    print("cycle:", " <-> ".join(sorted(name(m) for m in c)))
sys.exit(1 if sccs else 0)
