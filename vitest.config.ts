import { defineConfig } from 'vitest/config';

// One project per package. GPU tests live in files named *.gpu.test.ts and
// skip themselves (with a note) where no CUDA device is usable.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'engine-core', root: 'engine-core', include: ['test/**/*.test.ts'], testTimeout: 60_000 } },
      { test: { name: 'lessons', root: 'lessons', include: ['*/test/**/*.test.ts'], testTimeout: 120_000 } },
    ],
  },
});
