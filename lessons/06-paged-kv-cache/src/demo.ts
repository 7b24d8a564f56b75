// `pnpm lesson 6`: a few generations, the course workload, the record, the comparison,
// and how the pool was sized.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { lastPoolInfo, recipe } from './recipe.ts';

runLessonDemo(recipe, {
  after: () => {
    const p = lastPoolInfo;
    if (p) console.log(`KV pool: ${p.numBlocks} blocks of ${p.blockSize} tokens = ${(p.poolBytes / 2 ** 30).toFixed(2)} GiB (${p.basis})`);
  },
});
