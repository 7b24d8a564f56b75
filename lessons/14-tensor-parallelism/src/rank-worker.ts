// Ranks 1..N-1: each builds the same runner as rank 0 over its own shard and
// device, then runs every step rank 0 writes, until rank 0 says stop. It samples
// nothing and owns no sequences: the plan carries all it needs.
import { workerData } from 'node:worker_threads';

import type { Collectives } from '@aios/engine-core/model/shard.ts';
import { loadConfig } from '@aios/engine-core/model/config.ts';
import type { BatchedParts } from '@aios/lesson-07-batching';

import { GroupMemory } from './group-memory.ts';
import { PlanReader } from './plan-channel.ts';
import { type RankSpec, collectivesFor, shardContext } from './rank-group.ts';
import { ShardRunner } from './shard-runner.ts';
import { StepTrace, traceEnabled } from './step-trace.ts';

const spec = workerData as RankSpec;
const mem = new GroupMemory(spec.sab, spec.shape);
let comm: Collectives | undefined;
let runner: ShardRunner | undefined;
try {
  comm = collectivesFor(mem, spec.rank, spec.device, spec.ncclId, spec.timeoutMs);
  const mod = (await import(spec.parts.module)) as Record<string, unknown>;
  const parts = mod[spec.parts.name] as BatchedParts | undefined;
  if (!parts) throw new Error(`${spec.parts.module} does not export ${spec.parts.name}`);
  const base = { modelDir: spec.modelDir, cfg: loadConfig(spec.modelDir), dtype: spec.dtype, options: spec.options, log: () => {} };
  const trace = traceEnabled() ? new StepTrace(mem, spec.rank) : undefined;
  runner = new ShardRunner(shardContext(base, spec.rank, spec.shape.size, spec.device, comm), parts.attention, parts.model, undefined, trace);
  const reader = new PlanReader(mem, spec.rank);
  for (let plan = reader.next(); plan; plan = reader.next()) {
    runner.run(plan);
    comm.wait();
  }
} catch (e) {
  mem.fail(spec.rank, `rank ${spec.rank} (${spec.device}): ${e instanceof Error ? e.message : String(e)}`);
} finally {
  try {
    // The model's graphs before the communicator: NCCL frees a communicator only once the graphs that captured it are gone.
    try {
      runner?.dispose();
    } finally {
      comm?.dispose();
    }
  } catch (e) {
    mem.fail(spec.rank, `rank ${spec.rank} (${spec.device}) at teardown: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    mem.exit();
  }
}
