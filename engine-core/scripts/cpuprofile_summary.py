"""Summarizes a V8 CPU profile (node --cpu-prof; .cpuprofile or .cpuprofile.gz): self time and total
(inclusive) time per function, largest first, as shares of the profile's samples, so the host's part
of a step can be read function by function ("(idle)", "(program)" and "(garbage collector)" are
V8's own entries). Functions are told apart by name, file and line; under tsx every line reads 1
(the profile sees the transformed module), so a file's anonymous functions merge into one entry.

    python3 engine-core/scripts/cpuprofile_summary.py PROFILE [top] [--match TEXT]
    python3 engine-core/scripts/cpuprofile_summary.py PROFILE --tree FUNCTION [depth] [min_ms]

--tree: the call tree under every call of FUNCTION (say `begin`, the engine's step up to the
forward's launch), the calls merged by function, each with its total time, down to `depth` (4)
levels and leaving out what took under `min_ms` (8 ms) over the whole profile.
"""
from __future__ import annotations

import collections
import gzip
import json
import sys


def load(path):
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rt') as f:
        return json.load(f)


def main(path: str, top: int, match: str | None) -> None:
    prof = load(path)
    nodes = {n['id']: n for n in prof['nodes']}
    parent = {}
    for n in prof['nodes']:
        for c in n.get('children', []):
            parent[c] = n['id']
    counts = collections.Counter(prof['samples'])
    deltas = prof.get('timeDeltas', [])
    total_us = sum(deltas) if deltas else len(prof['samples'])
    per_sample_us = total_us / max(len(prof['samples']), 1)

    def label(n):
        cf = n['callFrame']
        url = cf['url'].rsplit('/', 2)
        return f"{cf['functionName'] or '(anonymous)'} {'/'.join(url[-2:])}:{cf['lineNumber'] + 1}"

    self_t = collections.Counter()
    total_t = collections.Counter()
    for nid, c in counts.items():
        self_t[label(nodes[nid])] += c
        seen = set()
        cur = nid
        while cur is not None:
            lab = label(nodes[cur])
            if lab not in seen:
                total_t[lab] += c
                seen.add(lab)
            cur = parent.get(cur)
    n = len(prof['samples'])
    print(f'{path}: {n} samples, {total_us / 1e6:.2f} s ({per_sample_us:.0f} us a sample)')
    for title, table in (('self', self_t), ('total', total_t)):
        print(f'-- {title} time')
        shown = 0
        for lab, c in table.most_common():
            if match and match not in lab:
                continue
            print(f'{100 * c / n:6.2f}% {c * per_sample_us / 1e3:9.1f} ms  {lab}')
            shown += 1
            if shown >= top:
                break


def tree(path: str, target: str, depth: int, min_ms: float) -> None:
    prof = load(path)
    nodes = {n['id']: n for n in prof['nodes']}
    counts = collections.Counter(prof['samples'])
    deltas = prof.get('timeDeltas', [])
    per_sample_ms = (sum(deltas) / max(len(prof['samples']), 1) if deltas else 1.0) / 1e3
    inclusive = {}

    def total(i):  # samples in node i and below (iterative: deep stacks)
        order, stack = [], [i]
        while stack:
            j = stack.pop()
            if j in inclusive:
                continue
            order.append(j)
            stack.extend(c for c in nodes[j].get('children', []) if c not in inclusive)
        for j in reversed(order):
            inclusive[j] = counts.get(j, 0) + sum(inclusive.get(c, 0) for c in nodes[j].get('children', []))
        return inclusive[i]

    def label(n):
        cf = n['callFrame']
        return f"{cf['functionName'] or '(anonymous)'} {cf['url'].rsplit('/', 1)[-1]}:{cf['lineNumber'] + 1}"

    merged = collections.defaultdict(float)

    def walk(i, path, d):
        p = path + (label(nodes[i]),)
        merged[p] += total(i) * per_sample_ms
        if d < depth:
            for c in nodes[i].get('children', []):
                walk(c, p, d + 1)

    parent = {c: n['id'] for n in prof['nodes'] for c in n.get('children', [])}

    def inside_another(i):  # a call of FUNCTION under another one's (recursion): counted there already
        j = parent.get(i)
        while j is not None:
            if nodes[j]['callFrame']['functionName'] == target:
                return True
            j = parent.get(j)
        return False

    for i, n in nodes.items():
        if n['callFrame']['functionName'] == target and not inside_another(i):
            walk(i, (), 0)
    for p, ms in sorted(merged.items()):
        if ms >= min_ms:
            print(f"{ms:9.1f} ms " + '  ' * (len(p) - 1) + p[-1])


if __name__ == '__main__':
    args = [a for a in sys.argv[1:]]
    if '--tree' in args:
        i = args.index('--tree')
        rest = args[i + 2:]
        tree(args[0], args[i + 1], int(rest[0]) if rest else 4, float(rest[1]) if len(rest) > 1 else 8.0)
        sys.exit(0)
    match = None
    if '--match' in args:
        i = args.index('--match')
        match = args[i + 1]
        del args[i:i + 2]
    main(args[0], int(args[1]) if len(args) > 1 else 30, match)
