// Lesson 11's persistent decode step (native/src/cuda/persistent_decode.cu) compiled as C++ and
// run on the CPU emulator's grid-wide mode (every block at once, grid barriers, atomics): two
// layers of a small Qwen3-like shape against a plain loop of lesson 10's forward, on fresh random
// inputs, on any machine. lessons/11-cuda-graphs/test/graphs.gpu.test.ts checks it on the hardware.
import { describe, it } from 'vitest';

import { emulator } from './emulator.ts';

const emu = emulator('persistent_emu', 'persistent-emu.test');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

describe.skipIf(!emu.built)('the persistent decode step on the CPU emulator', () => {
  it(`matches the fused forward's loop, stores only the step's K/V, same bits in any thread order (seed ${seed})`, () => {
    emu.expectPasses(seed, 240_000);
  });
});
