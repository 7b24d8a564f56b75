// `pnpm lesson 14 [--tp N]`: a few generations, the course workload, the record,
// the comparison with lesson 13's record, and what each rank holds.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
