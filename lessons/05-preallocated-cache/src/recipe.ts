// Lesson 05: lesson 04's engine with the concatenated cache replaced by
// preallocated per-sequence buffers.
import type { Recipe } from '@aios/engine-core/engine/types.ts';
import { withKVStore } from '@aios/lesson-04-kv-cache';

import { PreallocatedKVStore } from './preallocated-cache.ts';

export const recipe: Recipe = withKVStore('preallocated-cache', 5, 'K/V buffers of maximum length per sequence, written in place', (ctx) => new PreallocatedKVStore(ctx.cfg.numLayers));
