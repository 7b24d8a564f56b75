// `pnpm lesson 8`: a few generations, the course workload, the record, the comparison
// (with the pool, and the preemptions when there were any).
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
