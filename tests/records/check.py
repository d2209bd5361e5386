#!/usr/bin/env python3
"""tests/records/check.py KIND: checks the KIND records on stdin against the
contract in tests/records/KIND.jsonl (the fixtures the readers' tests parse).

Each fixture line is one variant of the record. A record on stdin matches when
it has every field that all variants have, no field that no variant has, and
each field with the JSON type the fixtures give it (for arrays of objects, the
objects' fields alike). Other kinds on stdin are ignored; at least one KIND
record must be there. Prints what does not match and exits 1."""
import json, os, sys

def jtype(v):
    if isinstance(v, bool): return "bool"
    if isinstance(v, int): return "int"
    if isinstance(v, float): return "number"
    return type(v).__name__

def shape(objs):
    """required keys, allowed keys -> set of types, nested shapes of object arrays"""
    required = set.intersection(*(set(o) for o in objs)) if objs else set()
    allowed, nested = {}, {}
    for o in objs:
        for k, v in o.items():
            allowed.setdefault(k, set()).add(jtype(v))
            if isinstance(v, list):
                nested.setdefault(k, []).extend(e for e in v if isinstance(e, dict))
    return required, allowed, {k: shape(v) for k, v in nested.items() if v}

def problems(rec, sh, where):
    required, allowed, nested = sh
    out = [f"{where}: missing field {k!r}" for k in sorted(required - set(rec))]
    for k, v in rec.items():
        if k not in allowed:
            out.append(f"{where}: field {k!r} is not in the contract")
        elif jtype(v) not in allowed[k]:
            out.append(f"{where}: field {k!r} is {jtype(v)}, the contract has {'/'.join(sorted(allowed[k]))}")
        elif isinstance(v, list) and k in nested:
            for i, e in enumerate(v):
                if not isinstance(e, dict):
                    out.append(f"{where}: {k}[{i}] is not an object")
                else:
                    out += problems(e, nested[k], f"{where}.{k}[{i}]")
    return out

def main():
    kind = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, kind + ".jsonl")) as f:
        fixtures = [json.loads(l) for l in f if l.strip()]
    assert all(x["kind"] == kind for x in fixtures), "fixture of another kind"
    sh = shape(fixtures)
    seen, bad = 0, []
    for n, line in enumerate(sys.stdin, 1):
        if not line.strip(): continue
        rec = json.loads(line)
        if rec.get("kind") != kind: continue
        seen += 1
        bad += problems(rec, sh, f"{kind} record at line {n}")
    if not seen:
        bad.append(f"no {kind} record on stdin")
    for b in bad: print("records:", b, file=sys.stderr)
    sys.exit(1 if bad else 0)

main()
