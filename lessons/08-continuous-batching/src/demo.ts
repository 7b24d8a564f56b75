// `pnpm lesson 8`: a few generations, the course workload, the record, the comparison,
// how the pool was sized and how often the scheduler preempted.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe, {
  after: (llm, result) => {
    for (const line of llm.parts.describe?.() ?? []) console.log(line);
    console.log(`preemptions: ${result.stats.preemptions} (a preempted sequence's cache is dropped and recomputed when blocks free up)`);
  },
});
