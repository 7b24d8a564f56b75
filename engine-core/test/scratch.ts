// Temporary folders for tests, removed once the test file that made them is done: a
// test run leaves nothing behind in the system's temp folder.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

const made: string[] = [];

// Vitest evaluates this module once per test file that imports it (files are isolated), so
// this hook belongs to that file and runs after its last test.
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh empty folder under the temp folder, named `<prefix>XXXXXX`, removed after this file's tests. */
export function scratchDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}
