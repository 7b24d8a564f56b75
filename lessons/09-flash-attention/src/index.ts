export { recipe, lesson09Parts } from './recipe.ts';
export { flashAttention, flashAttentionOp, defaultVersions, type FlashVersions } from './flash-attention.ts';
