// A workload's requests as JSON, for a peer engine to run exactly the same prompts and budgets
// (engine-core/scripts/hf_peer.py):
//   tsx engine-core/scripts/dump-workload.ts course|throughput|long OUT.json
import { writeFileSync } from 'node:fs';

import { WORKLOAD_NAMES, isWorkloadName, workload } from '../src/bench/workloads.ts';

const [name, out] = process.argv.slice(2);
if (!name || !out || !isWorkloadName(name)) {
  console.error(`usage: tsx engine-core/scripts/dump-workload.ts ${WORKLOAD_NAMES.join('|')} OUT.json`);
  process.exit(2);
}
const w = workload(name);
const requests = w.requests.map((r) => ({
  promptIds: r.promptIds,
  maxTokens: r.params.maxTokens,
  temperature: r.params.temperature,
  topK: r.params.topK,
  topP: r.params.topP,
  ignoreEos: r.params.ignoreEos,
}));
writeFileSync(out, JSON.stringify({ name: w.name, description: w.description, totals: w.totals, requests }));
console.log(`${w.name}: ${w.totals.requests} requests, ${w.totals.promptTokens} prompt tokens, ${w.totals.outputTokens} output tokens -> ${out}`);
