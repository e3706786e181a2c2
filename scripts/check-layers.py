#!/usr/bin/env python3
"""The layer rule, checked (docs/architecture.md, "Layers").

src/<layer>/*.c and include/<layer>/*.h form layers, from the ground up:
base, core, engine, kube, server, cli (the order of LAYERS in the Makefile).
A file may include a header of its own layer or of a layer below it, and a
private header beside it in src/<layer>/. The pure core (core) reads no
files, sockets or clocks and does not log or count: it may not include the
headers that would let it, nor call the functions that would.

Exit 0 when the tree keeps the rule; 1 with one line per breach, naming the
file and line; 2 when the tree cannot be read.
Usage: scripts/check-layers.py [ROOT]
"""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")

# Headers the pure core may not include, and calls it may not make.
CORE_BANNED_HEADERS = {
    '"log.h"', '"metrics.h"', '"rgtime.h"', "<unistd.h>", "<fcntl.h>", "<dirent.h>",
    "<sys/stat.h>", "<sys/socket.h>", "<netdb.h>", "<pthread.h>", "<curl/curl.h>",
    "<microhttpd.h>", "<time.h>", "<sys/random.h>",
}
CORE_BANNED_CALLS = re.compile(
    r"(?<![\w.>])(fopen|fdopen|freopen|opendir|open|openat|read|write|pread|pwrite|"
    r"socket|connect|accept|printf|fprintf|vfprintf|puts|fputs|getenv|"
    r"clock_gettime|gettimeofday|time|getrandom|syslog)\s*\(")
INCLUDE = re.compile(r'^\s*#\s*include\s+([<"][^>"]+[>"])')


def layers():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        for line in f:
            m = re.match(r"LAYERS\s*:=\s*(.+)$", line)
            if m:
                return m.group(1).split()
    sys.exit("check-layers: Makefile: no LAYERS line")


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(\\.|[^"\\\n])*"', '""', text)


def main():
    order = layers()
    rank = {name: i for i, name in enumerate(order)}
    public = {}  # header file name -> layer
    for layer in order:
        d = os.path.join(ROOT, "include", layer)
        for h in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if h.endswith(".h"):
                if h in public:
                    print(f"include/{layer}/{h}: also in include/{public[h]}/")
                public[h] = layer
    stray = [f for top in ("src", "include") for f in os.listdir(os.path.join(ROOT, top))
             if f.endswith((".c", ".h"))]
    breaches = [f"{f}: outside the layer directories" for f in stray]
    for top in ("src", "include"):
        for layer in order:
            d = os.path.join(ROOT, top, layer)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                if not name.endswith((".c", ".h")):
                    continue
                rel = f"{top}/{layer}/{name}"
                with open(os.path.join(d, name), encoding="utf-8") as f:
                    text = f.read()
                for no, line in enumerate(text.splitlines(), 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    inc = m.group(1)
                    if layer == "core" and inc in CORE_BANNED_HEADERS:
                        breaches.append(f"{rel}:{no}: the pure core includes {inc}")
                    if not inc.startswith('"'):
                        continue
                    h = inc.strip('"')
                    if top == "src" and os.path.exists(os.path.join(d, h)):
                        continue  # a private header beside the file
                    if h not in public:
                        breaches.append(f"{rel}:{no}: includes {inc}, which no layer has")
                    elif rank[public[h]] > rank[layer]:
                        breaches.append(f"{rel}:{no}: {layer} includes {inc} from {public[h]}, a layer above")
                if layer == "core" and name.endswith(".c"):
                    for no, line in enumerate(strip_comments(text).splitlines(), 1):
                        m = CORE_BANNED_CALLS.search(line)
                        if m:
                            breaches.append(f"{rel}:{no}: the pure core calls {m.group(1)}()")
    for b in breaches:
        print(b)
    if breaches:
        print(f"check-layers: {len(breaches)} breach(es) of the layer rule")
        return 1
    print(f"check-layers: {len(order)} layers, {len(public)} public headers, rule kept")
    return 0


if __name__ == "__main__":
    sys.exit(main())
