"""Sums an Nsight Compute CSV (--metrics gpu__time_duration.sum --csv) by kernel family:
launches and GPU time per kernel name, largest first, and the total. Used by the gpu-*.sh
scripts on their one-step profiles.

    python3 engine-core/scripts/ncu_summary.py profile.csv [top]
"""
import collections
import csv
import sys

# Nsight Compute writes the unit beside each value; these are the ones gpu__time_duration uses.
TO_US = {'nsecond': 1e-3, 'ns': 1e-3, 'usecond': 1.0, 'us': 1.0, 'msecond': 1e3, 'ms': 1e3, 'second': 1e6, 's': 1e6}


def main(path: str, top: int) -> None:
    rows = [r for r in csv.reader(open(path, errors='replace')) if len(r) > 10]
    if not rows:
        print('profile: no rows')
        return
    head = rows[0]
    rows = [dict(zip(head, r)) for r in rows[1:]]
    rows = [r for r in rows if r.get('Metric Name') == 'gpu__time_duration.sum']
    by = collections.defaultdict(lambda: [0, 0.0])
    for r in rows:
        unit = r['Metric Unit']
        if unit not in TO_US:
            raise SystemExit(f'ncu_summary: unknown time unit {unit!r}')
        name = r['Kernel Name'].split('(')[0][:70]
        by[name][0] += 1
        by[name][1] += float(r['Metric Value'].replace(',', '')) * TO_US[unit]
    print(f"profile: {len(rows)} kernels, {sum(v for _, v in by.values()):.1f} us of GPU time in the step")
    for name, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"  {us:9.1f} us  {n:4d} x  {name}")


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 14)
