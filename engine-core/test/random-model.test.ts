// Seeded random checkpoints: the parallel writer (--jobs N, for the 14B and 32B
// shapes lesson 14 runs) writes the same bytes as the sequential one.
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { describe, expect, it } from 'vitest';

import { PRESETS } from '../src/model/config.ts';
import { writeRandomModel } from '../src/model/random.ts';
import { openCheckpoint } from '../src/model/safetensors.ts';
import { scratchDir } from './scratch.ts';

describe('random model writer', () => {
  it('3 threads write the same file as one', () => {
    const dir = scratchDir('aios-random-');
    const cfg = { ...PRESETS.tiny, vocabSize: 4096 }; // the tiny shape with a small vocabulary: quick to write
    const one = path.join(dir, 'one'), three = path.join(dir, 'three');
    writeRandomModel(one, cfg, { preset: 'tiny', seed: 5 });
    const lines: string[] = [];
    writeRandomModel(three, cfg, { preset: 'tiny', seed: 5 }, (s) => lines.push(s), { jobs: 3 });
    const a = readFileSync(path.join(one, 'model.safetensors')), b = readFileSync(path.join(three, 'model.safetensors'));
    expect(b.length).toBe(a.length);
    expect(b.equals(a)).toBe(true);
    expect(lines.some((l) => /writing weights \(3 threads\)/.test(l))).toBe(true);
    const ck = openCheckpoint(three);
    try {
      expect(ck.info('model.layers.2.mlp.down_proj.weight').shape).toEqual([64, 160]);
    } finally {
      ck.close();
    }
    // Another seed is another file.
    writeRandomModel(one, cfg, { preset: 'tiny', seed: 6 }, () => {}, { jobs: 2 });
    expect(readFileSync(path.join(one, 'model.safetensors')).equals(a)).toBe(false);
  });
});
