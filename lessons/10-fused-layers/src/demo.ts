// `pnpm lesson 10`: a few generations, the course workload, the record, the comparison with
// lesson 09, and the workspace the fused forward holds.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';
import { BatchedRunner } from '@aios/lesson-07-batching';

import { FusedStepModel } from './fused-model.ts';
import { recipe } from './recipe.ts';

runLessonDemo(recipe, {
  after: (llm) => {
    for (const line of llm.parts.describe?.() ?? []) console.log(line);
    const runner = llm.parts.runner;
    if (runner instanceof BatchedRunner && runner.model instanceof FusedStepModel)
      console.log(`workspace: ${(runner.model.workspace.bytes / 2 ** 20).toFixed(0)} MiB for steps of up to ${llm.options.maxNumBatchedTokens} tokens, allocated once`);
  },
});
