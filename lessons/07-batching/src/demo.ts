// `pnpm lesson 7`: a few generations, the course workload, the record, the comparison,
// and how the pool was sized.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe, {
  after: (llm) => {
    for (const line of llm.parts.describe?.() ?? []) console.log(line);
  },
});
