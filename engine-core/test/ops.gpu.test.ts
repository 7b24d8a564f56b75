// The CUDA backend against the CPU reference, on fresh random inputs, with
// every output poisoned before the kernel runs. Skips where no GPU is usable.
import { describe, expect, it } from 'vitest';

import { cudaAvailable } from '../src/index.ts';
import { opCases, upload } from './op-cases.ts';
import { TOLERANCE, relError } from './helpers.ts';

const hasGpu = cudaAvailable();
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

if (!hasGpu) console.log('ops.gpu.test: skipped: no usable CUDA device on this machine (the CPU suite still runs)');

describe.skipIf(!hasGpu)(`CUDA ops vs the CPU reference (seed ${seed})`, () => {
  for (const c of opCases)
    for (const dtype of c.dtypes)
      it(`${c.name} [${dtype}]`, () => {
        const inputs = c.inputs(seed, dtype);
        const onCpu = upload(inputs, 'cpu');
        const onGpu = upload(inputs, 'cuda:0');
        const ref = Array.from(c.run('cpu', onCpu, dtype).toArray() as ArrayLike<number>, Number);
        const out = c.run('cuda:0', onGpu, dtype);
        const got = Array.from(out.toArray() as ArrayLike<number>, Number);
        expect(got.every((v) => !Number.isNaN(v)), 'every output element written').toBe(true);
        if (c.exact) expect(got).toEqual(ref);
        else {
          const tol = dtype === 'f32' ? 1e-4 : TOLERANCE[dtype as 'bf16' | 'f16'];
          const err = relError(got, ref);
          expect(err, `relative error ${err} over ${tol}`).toBeLessThan(tol);
        }
      });

  it('large bf16 matmul matches the CPU within bf16 tolerance', async () => {
    const { Tensor, ops } = await import('../src/index.ts');
    const { randomArray } = await import('./helpers.ts');
    const [M, N, K] = [64, 1536, 1024];
    const x = randomArray(M * K, seed + 11), w = randomArray(N * K, seed + 12, 0.05);
    const cpu = ops.matmul(Tensor.fromArray(x, [M, K], { dtype: 'bf16', device: 'cpu' }), Tensor.fromArray(w, [N, K], { dtype: 'bf16', device: 'cpu' }));
    const gpu = ops.matmul(Tensor.fromArray(x, [M, K], { dtype: 'bf16', device: 'cuda:0' }), Tensor.fromArray(w, [N, K], { dtype: 'bf16', device: 'cuda:0' }));
    expect(relError(gpu.toArray() as Float32Array, cpu.toArray() as Float32Array)).toBeLessThan(1e-2);
  });
});
