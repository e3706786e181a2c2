#!/usr/bin/env python3
"""Validates report objects against the openAPIV3Schema of their CRDs.

Usage: crdschema.py CRD.yaml [CRD.yaml...] -- OBJECTS.json

OBJECTS.json is one object or a v1 List of them. Each object must name a
kind and an apiVersion that one of the CRDs defines and serves, carry a
metadata.name (and a metadata.namespace for a namespaced CRD), and validate
against that version's schema with jsonschema, where every object schema
that lists properties also forbids others: the API server prunes unknown
fields of a structural schema without a word, so a field it would drop is
an error here. Exit 0 when every object validates, 1 otherwise, 2 on bad
usage or missing modules (python3-jsonschema, python3-yaml).
"""
import json
import sys

try:
    import jsonschema
    import yaml
except ImportError as e:
    print("crdschema: %s (Debian: python3-jsonschema, python3-yaml)" % e, file=sys.stderr)
    sys.exit(2)


def closed(schema):
    """A copy of an openAPIV3Schema that forbids fields it does not list."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()
           if not k.startswith("x-kubernetes-") and k != "description"}
    if "properties" in schema and "additionalProperties" not in schema:
        out["additionalProperties"] = False
    return out


def load_crds(paths):
    """{(group/version, kind): (schema, namespaced)} of every served version."""
    found = {}
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for v in spec["versions"]:
                    if not v.get("served"):
                        continue
                    key = ("%s/%s" % (spec["group"], v["name"]), spec["names"]["kind"])
                    found[key] = (closed(v["schema"]["openAPIV3Schema"]), spec["scope"] == "Namespaced")
    return found


def main(argv):
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    sep = argv.index("--")
    crds, objs_path = load_crds(argv[1:sep]), argv[sep + 1]
    with open(objs_path) as f:
        doc = json.load(f)
    objs = doc["items"] if doc.get("kind") == "List" else [doc]
    bad = 0
    for i, o in enumerate(objs):
        md = o.get("metadata") or {}
        ident = "%s %s/%s" % (o.get("kind"), md.get("namespace", ""), md.get("name", ""))
        entry = crds.get((o.get("apiVersion"), o.get("kind")))
        if entry is None:
            print("item %d (%s): no served CRD version defines %s %s" % (i, ident, o.get("apiVersion"), o.get("kind")))
            bad += 1
            continue
        schema, namespaced = entry
        problems = [e.message + " at " + "/".join(str(p) for p in e.absolute_path)
                    for e in jsonschema.Draft7Validator(schema).iter_errors(o)]
        if not md.get("name"):
            problems.append("no metadata.name")
        if namespaced and not md.get("namespace"):
            problems.append("no metadata.namespace for a namespaced kind")
        for p in problems:
            print("item %d (%s): %s" % (i, ident, p))
        bad += bool(problems)
    print("crdschema: %d of %d objects valid" % (len(objs) - bad, len(objs)))
    return 1 if bad or not objs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
