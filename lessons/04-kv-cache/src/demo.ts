// `pnpm lesson 4`: a few generations, the course workload, the record, the comparison.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { ConcatKVStore } from './concat-cache.ts';
import { IncrementalRunner } from './incremental-runner.ts';
import { recipe } from './recipe.ts';

runLessonDemo(recipe, {
  after: (llm) => {
    // The price of growing by concatenation, counted while the run went.
    const runner = llm.parts.runner;
    if (runner instanceof IncrementalRunner && runner.store instanceof ConcatKVStore)
      console.log(`concatenation copied ${(runner.store.copiedBytes / 2 ** 30).toFixed(3)} GiB of K/V in all`);
  },
});
