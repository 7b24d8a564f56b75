// Runs one of the CPU-emulator test programs built beside the addon (native/emu: flash_emu,
// gemm_emu) and checks its report: no FAIL line, exit 0, and its "0 of N runs failed" summary.
// Where it was not built (AIOS_EMU_TESTS=OFF, or not a POSIX system) the test file skips, saying so.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';

import { native } from '../src/index.ts';

export interface EmulatorRun {
  /** More arguments after `--seed` (`--only decode`). */
  args?: string[];
  /** Environment variables set for this run only (the kernels' timing switches). */
  env?: Record<string, string>;
}

export interface Emulator {
  /** Whether the program was built. */
  built: boolean;
  /** Runs it with `--seed seed` and asserts that every case passed. */
  expectPasses(seed: number, timeoutMs: number, run?: EmulatorRun): void;
  /** Runs it and returns its exit status (null when a signal ended it) and its whole report. */
  run(seed: number, timeoutMs: number, run?: EmulatorRun): { status: number | null; report: string };
}

export function emulator(name: string, testFile: string): Emulator {
  const exe = path.join(path.dirname(native.path), process.platform === 'win32' ? `${name}.exe` : name);
  const built = existsSync(exe);
  if (!built) console.log(`${testFile}: skipped: ${exe} was not built (AIOS_EMU_TESTS=OFF, or not a POSIX system)`);
  const spawn = (seed: number, timeoutMs: number, run: EmulatorRun = {}) =>
    spawnSync(exe, ['--seed', String(seed), ...(run.args ?? [])], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ...run.env } });
  return {
    built,
    run(seed, timeoutMs, run) {
      const r = spawn(seed, timeoutMs, run);
      return { status: r.status, report: `${r.stdout ?? ''}${r.stderr ?? ''}` };
    },
    expectPasses(seed, timeoutMs, run) {
      const r = spawn(seed, timeoutMs, run);
      const report = `${r.stdout ?? ''}${r.stderr ?? ''}`;
      const failed = report.split('\n').filter((l) => l.startsWith('FAIL') || l.startsWith('    '));
      expect(r.error, String(r.error)).toBeUndefined();
      expect(failed.join('\n'), 'failing cases').toBe('');
      expect(r.status, report.slice(-2000)).toBe(0);
      expect(report).toMatch(new RegExp(`${name}: 0 of \\d+ runs failed`));
    },
  };
}
