// The worker threads of writeRandomModel's parallel path start here: tsx is
// registered (a worker does not inherit the loader of the thread that started
// it), then random-writer.ts runs. A failure to start is recorded where the
// waiting main thread reads it (random.ts, writeWeightsParallel).
import { workerData } from 'node:worker_threads';

import { register } from 'tsx/esm/api';

register();
try {
  await import(new URL('./random-writer.ts', import.meta.url).href);
} catch (e) {
  const status = new Int32Array(workerData.status);
  if (Atomics.compareExchange(status, 1, 0, 1) === 0) {
    const msg = new TextEncoder().encode(String(e instanceof Error ? e.message : e)).subarray(0, 1000);
    new Uint8Array(workerData.status, 32, 1024).set(msg);
  }
  Atomics.add(status, 2, 1);
  Atomics.notify(status, 2);
}
