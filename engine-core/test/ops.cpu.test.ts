// The CPU backend against float64 references: this is what makes the CPU
// kernels fit to be the reference for the CUDA ones.
import { describe, expect, it } from 'vitest';

import { opCases, upload } from './op-cases.ts';
import { TOLERANCE, relError } from './helpers.ts';

const seed = (Date.now() ^ (process.pid << 8)) >>> 0; // fresh inputs every run; printed on failure

describe(`CPU ops vs float64 reference (seed ${seed})`, () => {
  for (const c of opCases)
    for (const dtype of c.dtypes)
      it(`${c.name} [${dtype}]`, () => {
        const inputs = c.inputs(seed, dtype);
        const tensors = upload(inputs, 'cpu');
        const out = c.run('cpu', tensors, dtype);
        const got = Array.from(out.toArray() as ArrayLike<number>, Number);
        const ref = Array.from(c.reference(inputs.map((i) => Float32Array.from(i.data)), dtype));
        if (c.exact) expect(got).toEqual(ref);
        else {
          const tol = dtype === 'f32' || dtype === 'bf16' || dtype === 'f16' ? TOLERANCE[dtype] : 0;
          const err = relError(got, ref);
          expect(err, `relative error ${err} over ${tol}`).toBeLessThan(tol);
        }
        for (const t of tensors) t.dispose();
        out.dispose();
      });
});
