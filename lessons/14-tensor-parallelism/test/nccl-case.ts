// The inputs and expected outputs of the 2-rank NCCL test, the same on both ranks.
// Values are small integers and halves, so sums are exact in f32 and bf16 alike.
export function ncclCase(rank: number, n: number) {
  const of = (r: number) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + r * 13) % 64) - 32 + 0.5 * r);
  const a0 = of(0), a1 = of(1);
  const gatherOf = (r: number) => Float32Array.from({ length: n }, (_, i) => r * 1000 + (i % 997));
  const gathered = new Float32Array(2 * n);
  gathered.set(gatherOf(0), 0);
  gathered.set(gatherOf(1), n);
  return {
    reduceIn: rank === 0 ? a0 : a1,
    reduceSum: a0.map((v, i) => v + a1[i]!),
    gatherIn: gatherOf(rank),
    gathered,
    broadcastBf16: Float32Array.from({ length: n }, (_, i) => (i % 100) - 50),
  };
}
