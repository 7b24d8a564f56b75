"""Reads an Nsight Systems GPU trace (nsys stats --report cuda_gpu_trace --format csv, recorded with
--cuda-graph-trace=node) of a lesson's run and summarizes its decode steps as the GPU ran them.

A step is a run of GPU work whose gaps are all under GAP_US (the host's part between two steps,
reading the sampled tokens and planning the next, leaves a longer gap); the decode steps are the
steps with the most common kernel count (the replayed graph). Per decode step (median over them):
the span from its first kernel's start to its last kernel's end, the GPU's busy time in it (the union
of the kernels' intervals), the idle time between its kernels, and the host's gap before the next
step; then each kernel family's time per step, largest first.

    python3 engine-core/scripts/nsys_summary.py trace_cuda_gpu_trace.csv [top]
"""
import collections
import csv
import statistics
import sys

GAP_US = 15.0


def main(path: str, top: int) -> None:
    rows = list(csv.DictReader(open(path, errors='replace')))
    if not rows:
        print('nsys_summary: no rows')
        return
    start_key = next(k for k in rows[0] if k.startswith('Start'))
    dur_key = next(k for k in rows[0] if k.startswith('Duration'))
    scale = 1e-3 if '(ns)' in start_key else 1.0  # to microseconds
    events = []
    for r in rows:
        name = r.get('Name', '')
        kind = 'copy' if name.startswith('[CUDA') else 'kernel'
        events.append((float(r[start_key].replace(',', '')) * scale, float(r[dur_key].replace(',', '')) * scale, name.split('(')[0][:80], kind))
    events.sort()
    steps, cur, end = [], [], None
    for e in events:
        if cur and e[0] - end > GAP_US:
            steps.append(cur)
            cur = []
        cur.append(e)
        end = e[0] + e[1] if not cur[:-1] else max(end, e[0] + e[1])
    if cur:
        steps.append(cur)
    counts = collections.Counter(sum(1 for e in s if e[3] == 'kernel') for s in steps)
    mode, n = counts.most_common(1)[0]
    decode = [i for i, s in enumerate(steps) if sum(1 for e in s if e[3] == 'kernel') == mode]
    print(f'{len(events)} GPU events, {len(steps)} runs of work split at gaps over {GAP_US:g} us; '
          f'{n} decode steps of {mode} kernels (the most common count)')
    spans, busy, gaps = [], [], []
    per_name = collections.defaultdict(list)
    for i in decode:
        s = steps[i]
        t0, t1 = s[0][0], max(e[0] + e[1] for e in s)
        spans.append(t1 - t0)
        union, cs, ce = 0.0, None, None
        for e in s:
            if cs is None or e[0] > ce:
                if cs is not None:
                    union += ce - cs
                cs, ce = e[0], e[0] + e[1]
            else:
                ce = max(ce, e[0] + e[1])
        union += ce - cs
        busy.append(union)
        if i + 1 < len(steps):
            gaps.append(steps[i + 1][0][0] - t1)
        sums = collections.defaultdict(float)
        for e in s:
            sums[(e[2], e[3])] += e[1]
        for k, v in sums.items():
            per_name[k].append(v)
    med = statistics.median
    print(f'a decode step (median): span {med(spans):.1f} us, GPU busy {med(busy):.1f} us, idle between its kernels '
          f'{med(spans) - med(busy):.1f} us; the gap to the next step (the host) {med(gaps) if gaps else 0:.1f} us')
    per_step = collections.Counter()
    for s in (steps[i] for i in decode[:1]):
        for e in s:
            per_step[(e[2], e[3])] += 1
    fams = sorted(per_name.items(), key=lambda kv: -med(kv[1]))
    for (name, kind), vals in fams[:top]:
        c = per_step[(name, kind)]
        print(f'{med(vals):9.1f} us {c:4d} x {med(vals) / max(c, 1):6.2f} us  {name}')


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 15)
