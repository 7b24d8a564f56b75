// `pnpm lesson 9`: a few generations, the course workload, the record, the comparison with
// lesson 08. The kernels alone, version by version: pnpm bench:kernels.
import { runLessonDemo } from '@aios/engine-core/bench/lesson-demo.ts';

import { recipe } from './recipe.ts';

runLessonDemo(recipe);
