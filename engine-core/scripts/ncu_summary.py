"""Sums an Nsight Compute CSV (--metrics gpu__time_duration.sum[,dram__bytes_read.sum] --csv) by
kernel family: launches and GPU time per kernel name, largest first, and the total; where the CSV
also has dram__bytes_read.sum, the bytes each family read from device memory and the rate
(GB/s) at which it read them. Used by the gpu-*.sh scripts on their one-step profiles.

    python3 engine-core/scripts/ncu_summary.py profile.csv [top]
"""
import collections
import csv
import sys

# Nsight Compute writes the unit beside each value; these are the ones gpu__time_duration uses.
TO_US = {'nsecond': 1e-3, 'ns': 1e-3, 'usecond': 1.0, 'us': 1.0, 'msecond': 1e3, 'ms': 1e3, 'second': 1e6, 's': 1e6}
TO_BYTES = {'byte': 1.0, 'Kbyte': 1e3, 'Mbyte': 1e6, 'Gbyte': 1e9, 'Tbyte': 1e12, 'KB': 1e3, 'MB': 1e6, 'GB': 1e9}


def main(path: str, top: int) -> None:
    rows = [r for r in csv.reader(open(path, errors='replace')) if len(r) > 10]
    if not rows:
        print('profile: no rows')
        return
    head = rows[0]
    rows = [dict(zip(head, r)) for r in rows[1:]]
    reads = collections.defaultdict(float)
    for r in rows:
        if r.get('Metric Name') == 'dram__bytes_read.sum':
            unit = r['Metric Unit']
            if unit not in TO_BYTES:
                raise SystemExit(f'ncu_summary: unknown byte unit {unit!r}')
            reads[r['Kernel Name'].split('(')[0][:70]] += float(r['Metric Value'].replace(',', '')) * TO_BYTES[unit]
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
        read = f"  {reads[name] / 1e6:9.1f} MB read, {reads[name] / (us * 1e3):6.0f} GB/s" if name in reads else ''
        print(f"  {us:9.1f} us  {n:4d} x  {name}{read}")


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 14)
