// `pnpm lesson 10`: a few generations, the course workload, the record, the comparison with
// lesson 09, and the workspace the fused forward holds.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
