#!/usr/bin/env python3
"""Structure limits: no function over 120 lines outside tests, no file over 800 lines.

Usage: .ci/structure.py [--fn-max N] [--file-max N] [--allow PATH_PREFIX ...]

Reads the Rust files git tracks (or every *.rs below the current folder outside git).
A function is measured from its `fn` line to its closing brace. Test code does not count for
the function limit: files under `tests/`, files named `tests*.rs`, and `#[cfg(test)]` modules.
Exits 1 and lists the offenders when a limit is broken; `--allow` names path prefixes owned
elsewhere that are reported but do not fail.
"""

import argparse
import os
import re
import subprocess
import sys

FN_RE = re.compile(
    r"^\s*(?:pub(?:\([^)]*\))?\s+)?(?:default\s+)?(?:const\s+)?(?:async\s+)?(?:unsafe\s+)?"
    r"(?:extern\s+\"[^\"]*\"\s+)?fn\s+(\w+)"
)
CFG_TEST_RE = re.compile(r"^\s*#\[cfg\((?:all\()?test\b")


def strip(line, state):
    """Blanks strings, chars and comments; `state` carries a block comment or raw string."""
    out = []
    i = 0
    n = len(line)
    while i < n:
        if state["block"]:
            end = line.find("*/", i)
            if end < 0:
                return "".join(out)
            state["block"] = False
            i = end + 2
            continue
        if state["str"]:
            # inside a (possibly raw) string literal spanning lines
            term = state["str"]
            if term == '"':
                while i < n:
                    if line[i] == "\\":
                        i += 2
                        continue
                    if line[i] == '"':
                        break
                    i += 1
                if i >= n:
                    return "".join(out)
                i += 1
            else:
                end = line.find(term, i)
                if end < 0:
                    return "".join(out)
                i = end + len(term)
            state["str"] = None
            continue
        c = line[i]
        if line.startswith("//", i):
            break
        if line.startswith("/*", i):
            state["block"] = True
            i += 2
            continue
        m = re.match(r'(?:b)?r(#*)"', line[i:])
        if m and (i == 0 or not (line[i - 1].isalnum() or line[i - 1] == "_")):
            state["str"] = '"' + m.group(1)
            i += len(m.group(0))
            continue
        if c == '"':
            state["str"] = '"'
            i += 1
            continue
        if c == "'":
            # char literal ('a', '\n', '\u{..}') or a lifetime ('a)
            m = re.match(r"'(?:\\.|\\u\{[0-9a-fA-F]+\}|[^\\'])'", line[i:])
            if m:
                i += len(m.group(0))
                continue
        out.append(c)
        i += 1
    return "".join(out)


def functions(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    state = {"block": False, "str": None}
    code = [strip(line, state) for line in lines]
    test_file = path.startswith("tests/") or "/tests/" in path or re.match(
        r"tests\w*\.rs$", os.path.basename(path)
    )
    # ranges of #[cfg(test)] items
    test_ranges = []
    depth_at = []
    depth = 0
    for text in code:
        depth_at.append(depth)
        depth += text.count("{") - text.count("}")
    found = []
    for idx, raw in enumerate(lines):
        if CFG_TEST_RE.match(raw):
            end = close_of(code, idx)
            if end is not None:
                test_ranges.append((idx, end))
        m = FN_RE.match(code[idx])
        if not m:
            continue
        end = close_of(code, idx)
        if end is None:
            continue
        in_test = test_file or any(a <= idx <= b for a, b in test_ranges)
        found.append((m.group(1), idx + 1, end - idx + 1, in_test))
    return len(lines) - (1 if lines and lines[-1] == "" else 0), found


def close_of(code, start):
    """Line index of the brace that closes the first block opened at or after `start`;
    None when a `;` ends the item first (a declaration without a body)."""
    depth = 0
    opened = False
    for j in range(start, len(code)):
        for ch in code[j]:
            if ch == "{":
                depth += 1
                opened = True
            elif ch == "}":
                depth -= 1
                if opened and depth == 0:
                    return j
            elif ch == ";" and not opened and depth == 0:
                return None
    return None


def tracked():
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.rs"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return sorted(p for p in out.split("\n") if p and os.path.exists(p))
    except (OSError, subprocess.CalledProcessError):
        paths = []
        for root, _, files in os.walk("."):
            paths += [os.path.join(root, f)[2:] for f in files if f.endswith(".rs")]
        return sorted(paths)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fn-max", type=int, default=120)
    ap.add_argument("--file-max", type=int, default=800)
    ap.add_argument("--allow", action="append", default=[])
    args = ap.parse_args()
    failed = False
    for path in tracked():
        if path.startswith("target") or "/target/" in path:
            continue
        allowed = any(path.startswith(p) for p in args.allow)
        count, fns = functions(path)
        tag = "allowed" if allowed else "FAIL"
        if count > args.file_max:
            print(f"{tag}: {path}: {count} lines (limit {args.file_max})")
            failed |= not allowed
        for name, line, length, in_test in fns:
            if length > args.fn_max and not in_test:
                print(f"{tag}: {path}:{line}: fn {name} is {length} lines (limit {args.fn_max})")
                failed |= not allowed
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
