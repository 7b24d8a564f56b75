// Lesson 09's CUDA kernels (native/src/cuda/flash_*.cu) compiled as C++ and run
// on the CPU emulator of thread blocks (native/emu): every version checked
// against the CPU reference on fresh random inputs, on any machine. The GPU
// suite (flash-attention.gpu.test.ts) checks the same kernels on the hardware.
import { describe, expect, it } from 'vitest';

import { emulator } from './emulator.ts';

const emu = emulator('flash_emu', 'flash-emu.test');
const seed = (Date.now() ^ (process.pid << 8)) >>> 0;

describe.skipIf(!emu.built)('lesson 09 kernels on the CPU emulator', () => {
  it(`every prefill and decode version matches the CPU reference (seed ${seed})`, () => {
    emu.expectPasses(seed, 110_000);
  });

  // The decode plan's timing switches (timing_switch, native/src/switches.h): a forced split count and
  // floor change only how the work is divided, never the result; a malformed value is refused.
  it('decode and the cascade still match with the automatic split forced (AIOS_DECODE_SPLITS=3, AIOS_DECODE_MIN_TILES=1)', () => {
    emu.expectPasses(seed, 60_000, { args: ['--only', 'decode'], env: { AIOS_DECODE_SPLITS: '3' } });
    emu.expectPasses(seed, 60_000, { args: ['--only', 'cascade'], env: { AIOS_DECODE_MIN_TILES: '1' } });
  });

  // Decode v3 reads the block table a tile ahead of its copies by default; =0 reads it at the copy.
  it('decode and the cascade match with the block table read at each copy (AIOS_DECODE_TABLE_AHEAD=0)', () => {
    emu.expectPasses(seed, 60_000, { args: ['--only', 'decode'], env: { AIOS_DECODE_TABLE_AHEAD: '0' } });
    emu.expectPasses(seed, 60_000, { args: ['--only', 'cascade'], env: { AIOS_DECODE_TABLE_AHEAD: '0' } });
  });

  // Every attention kernel finds a power-of-two block size's blocks by a shift (BlockIndex,
  // flash_common.cuh) and divides for any other size: both run in the default cases (prefill block
  // sizes 16, 32, 5 and 7; decode 16, 8 and 11); =0 divides for every size, the path the shift
  // replaced, kept for timing.
  it('prefill, decode and the cascade match with every block size divided (AIOS_BLOCK_SHIFT=0)', () => {
    emu.expectPasses(seed, 110_000, { env: { AIOS_BLOCK_SHIFT: '0' } });
  });

  it('a malformed timing switch stops the program with its name and range', () => {
    for (const [name, value, range] of [['AIOS_DECODE_SPLITS', '3x', '1..1024'], ['AIOS_DECODE_MIN_TILES', '0', '1..16'], ['AIOS_DECODE_STAGES', '5', '2..4'], ['AIOS_DECODE_TABLE_AHEAD', 'yes', '0..1'], ['AIOS_BLOCK_SHIFT', '2', '0..1']]) {
      const r = emu.run(seed, 60_000, { args: ['--only', 'decode'], env: { [name!]: value! } });
      expect(r.status, r.report.slice(-500)).not.toBe(0);
      expect(r.report).toContain(`${name} must be an integer in ${range}, got "${value}"`);
    }
  });
});
