// One worker of writeRandomModel's parallel path: takes the next tensor off the
// shared queue, computes its values (randomWeightChunks: the same stream the
// sequential writer writes) and writes them at the tensor's offset in the file,
// until the queue is empty.
import { closeSync, openSync, writeSync } from 'node:fs';
import { workerData } from 'node:worker_threads';

import { randomWeightChunks } from './random.ts';

interface Job {
  file: string;
  seed: number;
  tensors: { name: string; numel: number; offset: number }[];
  status: SharedArrayBuffer;
}

const job = workerData as Job;
const status = new Int32Array(job.status);
let fd: number | undefined;
try {
  fd = openSync(job.file, 'r+');
  for (let i = Atomics.add(status, 0, 1); i < job.tensors.length && Atomics.load(status, 1) === 0; i = Atomics.add(status, 0, 1)) {
    const t = job.tensors[i]!;
    let pos = t.offset;
    for (const chunk of randomWeightChunks(t.name, t.numel, job.seed)) {
      const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, pos + done);
      pos += bytes.length;
      Atomics.add(status, 3, Math.round(chunk.length / 2 ** 16)); // progress, in units of 64 Ki values
    }
  }
} catch (e) {
  if (Atomics.compareExchange(status, 1, 0, 1) === 0)
    new Uint8Array(job.status, 32, 1024).set(new TextEncoder().encode(`${job.file}: ${e instanceof Error ? e.message : String(e)}`).subarray(0, 1000));
} finally {
  if (fd !== undefined) closeSync(fd);
  Atomics.add(status, 2, 1);
  Atomics.notify(status, 2);
}
