/**
 * Open-Sora training checkpoint directories (docs/guides/training-checkpoints.md): list, pick the
 * latest complete one, verify, write manifests, export EMA/model weights for inference, prune.
 */
export { compareCheckpoints, inspectCheckpoint, listCheckpoints, planPrune, pruneCheckpoints } from '../runtime/training/checkpoints.ts';
export type { CheckpointInfo, ExperimentListing, PartInfo, PrunePlanItem } from '../runtime/training/checkpoints.ts';
export { writeTrainingCheckpoint, type WriteTrainingCheckpointOptions } from '../runtime/training/writer.ts';
export { exportCheckpoint, InterruptedError, parseSize, verifyCheckpoint, writeManifest } from '../runtime/training/export.ts';
export type { CkptVerifyReport, ExportDtype, ExportOptions, ExportResult, Manifest } from '../runtime/training/export.ts';
