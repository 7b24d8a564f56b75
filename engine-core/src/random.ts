// The project's seeded generators, none for anything secret:
//   mulberry32   uniform floats in [0, 1): test data, timing data, per-request sampling streams;
//   xoshiro128   uint32s for the random-weight checkpoints (model/random.ts), whose bytes the
//                golden fixture pins by hash, so it stays as it is.
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

/** xoshiro128**: fast, seedable, good statistics; uint32 draws (one stream per tensor in model/random.ts). */
export function xoshiro128(seed: number): () => number {
  // splitmix32 to spread the seed over the state
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = next(), b = next(), c = next(), d = next();
  return () => {
    const r = Math.imul(((Math.imul(b, 5) << 7) | (Math.imul(b, 5) >>> 25)), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
    return r;
  };
}
