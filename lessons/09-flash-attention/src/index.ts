export { recipe, lesson09Parts } from './recipe.ts';
export { FLASH_HEAD_DIMS, flashAttention, flashAttentionOp, defaultVersions, type FlashVersions } from './flash-attention.ts';
