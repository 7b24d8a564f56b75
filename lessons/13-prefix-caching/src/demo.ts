// `pnpm lesson 13`: a few generations, a workload (--workload shared-prefix is the one this
// lesson is for), the record, the comparison with lesson 12, and what the cache found.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
