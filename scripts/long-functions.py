#!/usr/bin/env python3
"""List the longest functions under src/ (lines from `fn` to its closing brace).

Usage: python3 scripts/long-functions.py [LIMIT] [--tests]
Prints functions longer than LIMIT lines (default 100), longest first, and
exits 1 when there is one. Test modules (`#[cfg(test)]`) are left out
unless --tests is given.
"""
import os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
args = [a for a in sys.argv[1:] if not a.startswith("--")]
limit = int(args[0]) if args else 100
tests = "--tests" in sys.argv
found = []
for d, _, fs in os.walk(ROOT):
    for f in fs:
        if not f.endswith(".rs"):
            continue
        p = os.path.join(d, f)
        lines = open(p).read().split("\n")
        if not tests:
            for i, l in enumerate(lines):
                if l.strip() == "#[cfg(test)]":
                    lines = lines[:i]
                    break
        i = 0
        while i < len(lines):
            m = re.match(r"\s*(pub(\([a-z]+\))? )?(async )?fn ([a-z_0-9]+)", lines[i])
            if not m:
                i += 1
                continue
            depth, started, j = 0, False, i
            while j < len(lines):
                code = re.sub(r'"([^"\\]|\\.)*"', '""', lines[j].split("//")[0])
                depth += code.count("{") - code.count("}")
                if "{" in code:
                    started = True
                if started and depth <= 0:
                    break
                if not started and code.rstrip().endswith(";"):
                    break
                j += 1
            n = j - i + 1
            found.append((n, os.path.relpath(p, os.path.join(ROOT, "..")), i + 1, m.group(4)))
            i += 1
found.sort(reverse=True)
print(f"{len(found)} functions; longest: {found[0][0]} lines ({found[0][3]} in {found[0][1]})")
over = [x for x in found if x[0] > limit]
for n, p, line, name in over:
    print(f"{n:5} {p}:{line} {name}")
sys.exit(1 if over else 0)
