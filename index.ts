/**
 * sorac programmatic API.
 *
 *   import { compile, traceEntry, load, run } from 'sorac'
 *   const model = compile({ file: 'examples/stdit3.sora', host: fsHost, config: { values: { depth: 4 } } })
 *   const { graph } = traceEntry(model, 'forward')
 *   const out = await run(model, { weights: 'ckpt.safetensors', inputs: { x, timestep, ... } })
 */
export { compile, traceEntry } from './compiler/compile.ts';
export type { CompiledModel, CompileOptions, ConfigInput, TraceOptions, TraceResult, EntryInfo } from './compiler/compile.ts';
export { fsHost } from './compiler/host.ts';
export type { Diagnostic, Span } from './core/diagnostics.ts';
export type { Keymap, KeymapEntry } from './core/keymap.ts';
export { canonicalJson, contractHash, parameterCount } from './core/keymap.ts';
export type { IrGraph } from './core/ir.ts';
export { format } from './grammar/format.ts';
export { emitOnnx } from './compiler/emit/onnx.ts';
export { load, run, ModelError } from './api/run.ts';
export type { LoadedModel, LoadOptions, RunOptions } from './api/run.ts';
// Open-Sora training checkpoint dirs (docs/guides/training-checkpoints.md)
export { listCheckpoints, inspectCheckpoint, planPrune, pruneCheckpoints, writeTrainingCheckpoint } from './runtime/training/checkpoints.ts';
export type { CheckpointInfo, ExperimentListing, PartInfo, PrunePlanItem, WriteTrainingCheckpointOptions } from './runtime/training/checkpoints.ts';
export { exportCheckpoint, verifyCheckpoint, writeManifest } from './runtime/training/export.ts';
export type { CkptVerifyReport, ExportOptions, ExportResult, Manifest } from './runtime/training/export.ts';
// Micro-batching along axes an entry declares with micro_batch() (docs/adr/005-micro-batching.md)
export { declaredMicroBatch, planMicroBatch, runMicroBatched, MicroBatchError } from './runtime/execution/micro-batch.ts';
export type { MicroBatchDecl, MicroBatchPlan, MicroBatchRunOptions, MicroBatchResult } from './runtime/execution/micro-batch.ts';
// Checkpoint access (docs/guides/checkpoints.md)
export { openWeights } from './runtime/weights/store.ts';
export type { TensorStore, StoredTensor } from './runtime/weights/store.ts';
export { loadReport, renderLoadReport } from './runtime/weights/load-report.ts';
export type { LoadReport } from './runtime/weights/load-report.ts';
// Shape migrations (docs/cli/migrate.md, docs/adr/004-migrations-as-data.md)
export { applyMigration, storeSignature } from './runtime/migrate/apply.ts';
export type { ApplyOptions, ApplyResult, ApplyProgress } from './runtime/migrate/apply.ts';
export { BUILTINS, getBuiltin } from './runtime/migrate/builtins.ts';
export { diffSignatures } from './runtime/migrate/diff.ts';
export type { DiffResult, Unmatched } from './runtime/migrate/diff.ts';
export { composePlans, invertPlan, planHash, validatePlan } from './runtime/migrate/plan.ts';
export type { Op, Plan } from './runtime/migrate/plan.ts';
export { resolvePlan } from './runtime/migrate/resolve.ts';
export { planFromJson, planFromScript } from './runtime/migrate/script.ts';
export { migration, MigrationBuilder } from './runtime/migrate/builder.ts';
export { MigrateError } from './runtime/migrate/errors.ts';
