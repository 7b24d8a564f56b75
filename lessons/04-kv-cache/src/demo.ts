// `pnpm lesson 4`: a few generations, the course workload, the record, the comparison.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';
import type { LLM } from '@aios/engine-core/engine/llm.ts';

import { ConcatKVStore } from './concat-cache.ts';
import { IncrementalRunner } from './incremental-runner.ts';
import { recipe } from './recipe.ts';

/** The store's count of copied bytes as each timed run started: one run's copies lie between two. */
const atRunStart: number[] = [];
const concatStore = (llm: LLM) => {
  const runner = llm.parts.runner;
  return runner instanceof IncrementalRunner && runner.store instanceof ConcatKVStore ? runner.store : undefined;
};

runLessonDemo(recipe, {
  onRunStart: (llm) => {
    const store = concatStore(llm);
    if (store) atRunStart.push(store.copiedBytes);
  },
  after: (llm) => {
    // The price of growing by concatenation, counted while the run went: the first timed run's
    // copies (the samples, the warm-up and the calibration before it are not counted).
    const store = concatStore(llm);
    if (!store || atRunStart.length === 0) return;
    const oneRun = (atRunStart[1] ?? store.copiedBytes) - atRunStart[0]!;
    const gib = (b: number) => (b / 2 ** 30).toFixed(3);
    console.log(`concatenation copied ${gib(oneRun)} GiB of K/V in the first timed run of the workload (${gib(store.copiedBytes)} GiB in this process, samples, warm-up and calibration included)`);
  },
});
