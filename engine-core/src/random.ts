// mulberry32: a tiny seeded generator of uniform floats in [0, 1). Enough for
// test data and for per-request sampling streams; not for anything secret.
// (The workloads use a port of CPython's Mersenne Twister instead, to match
// Python's benchmarks draw for draw: bench/workloads.ts.)
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
