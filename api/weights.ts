/**
 * Checkpoint access for API users and the CLI: open any checkpoint offline (files, HF/diffusers dirs,
 * sharded indexes, Open-Sora training dirs, hub ids from the local cache), inspect it from headers,
 * verify its bytes, and validate it against a keymap. See docs/guides/checkpoints.md.
 */
export { openWeights, type OpenWeightsOptions, type StoredTensor, type TensorStore } from '../runtime/weights/store.ts';
export { collapseKeys, formatBytes, renderCollapsed } from '../runtime/weights/key-tree.ts';
export { verifyWeights, type VerifyProgress, type VerifyReport } from '../runtime/weights/verify.ts';
export { checkWeights, loadReport, renderLoadReport, type LoadReport } from '../runtime/weights/load-report.ts';
