#!/usr/bin/env python3
"""Banned functions, checked (scripts/banned-functions.txt says which and why).

Scans the C sources (src/, include/, tests/, fuzz/, bench/) with comments,
string and character literals blanked out, for calls NAME( of a banned
function. A call through a member (p->NAME(, s.NAME() is not one. Each
breach is reported as FILE:LINE: NAME() in FUNCTION: why, what instead.
An "allow" entry of the list exempts the calls of one function inside one
C function of one file; an allow entry that exempts nothing is a breach too,
so the list cannot outlive the code it excuses.

Exit 0 when no banned call is left; 1 with one line per breach; 2 when the
list or a source file cannot be read.
Usage: scripts/check-banned.py [ROOT [FILE...]]
FILEs are relative to ROOT; without them, the files scripts/check-style.sh
--list names.
"""
import os
import re
import subprocess
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
LIST = "scripts/banned-functions.txt"


def fail(msg):
    print(f"check-banned: {msg}", file=sys.stderr)
    sys.exit(2)


def read_list(path):
    """Returns ({name: (prefixes, reason)}, [[name, file, func, reason, lineno, used]])."""
    bans, allows = {}, []
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        fail(f"{path}: {e.strerror}")
    for no, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        head, sep, reason = line.partition(" -- ")
        words = head.split()
        if not sep or not reason.strip():
            fail(f"{LIST}:{no}: no reason (\"-- why\") on the entry")
        if words[0] == "ban" and len(words) >= 2:
            bans[words[1]] = (tuple(words[2:]), reason.strip())
        elif words[0] == "allow" and len(words) == 4:
            allows.append([words[1], words[2], words[3], reason.strip(), no, False])
        else:
            fail(f"{LIST}:{no}: expected \"ban NAME [PATH...] -- why\" "
                 "or \"allow NAME FILE FUNCTION -- why\"")
    for a in allows:
        if a[0] not in bans:
            fail(f"{LIST}:{a[4]}: allow {a[0]}, which is not banned")
    return bans, allows


def blank(text):
    """Comments, string and character literals replaced by blanks; newlines kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(c + re.sub(r"[^\n]", " ", text[i + 1:j - 1]) + c)
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


DEFINE = re.compile(r"^\s*#\s*define\s+(\w+)")
FUNC_HEAD = re.compile(r"(\w+)\s*\((?:[^()]|\([^()]*\))*\)\s*(?:__attribute__\s*\(\(.*\)\)\s*)?$", re.S)


def owners(code):
    """The name of the function (or macro:NAME) each line belongs to, None at file scope."""
    owner, depth, head, current = [], 0, "", None
    in_pp, macro = False, None  # inside a (continued) preprocessor directive
    for line in code.split("\n"):
        if in_pp or line.lstrip().startswith("#"):
            if not in_pp:
                m = DEFINE.match(line)
                macro = "macro:" + m.group(1) if m else None
            owner.append(macro or current)
            in_pp = line.rstrip().endswith("\\")
            continue
        owner.append(current)
        for c in line:
            if c == "{":
                if depth == 0:
                    m = FUNC_HEAD.search(head.strip())
                    current = m.group(1) if m else None
                    owner[-1] = owner[-1] or current
                depth += 1
            elif c == "}":
                depth = max(depth - 1, 0)
                if depth == 0:
                    current, head = None, ""
            elif depth == 0:
                head = "" if c == ";" else head + c
        if depth == 0:
            head += "\n"
    return owner


def main():
    bans, allows = read_list(os.path.join(ROOT, LIST))
    call = re.compile(r"(?<![\w.])(?<!->)\b(" + "|".join(map(re.escape, bans)) + r")\s*\(")
    files = sys.argv[2:] or subprocess.run(
        ["sh", os.path.join(ROOT, "scripts/check-style.sh"), "--list", ROOT],
        capture_output=True, text=True, check=True).stdout.split()
    breaches, hits = [], 0
    for rel in files:
        try:
            with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
                code = blank(f.read())
        except (OSError, UnicodeDecodeError) as e:
            fail(f"{rel}: {e}")
        owner = owners(code)
        for m in call.finditer(code):
            name = m.group(1)
            prefixes, reason = bans[name]
            if prefixes and not rel.startswith(prefixes):
                continue
            no = code.count("\n", 0, m.start()) + 1
            func = owner[no - 1] or "-"
            ok = [a for a in allows if a[0] == name and a[1] == rel and a[2] == func]
            for a in ok:
                a[5] = True
            if not ok:
                hits += 1
                where = "at file scope" if func == "-" else f"in {func}"
                breaches.append(f"{rel}:{no}: {name}() {where}: {reason}")
    for a in allows:
        if not a[5]:
            breaches.append(f"{LIST}:{a[4]}: allow {a[0]} {a[1]} {a[2]} exempts no call: "
                            "remove the entry")
    for b in breaches:
        print(b)
    if breaches:
        print(f"check-banned: {len(breaches)} breach(es) in {len(files)} files")
        return 1
    print(f"check-banned: {len(bans)} banned functions, {len(allows)} exceptions, "
          f"{len(files)} files clean")
    return 0


if __name__ == "__main__":
    sys.exit(main())
