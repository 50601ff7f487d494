/**
 * sorac programmatic API (the package's entry point; everything here comes from api/ and core/).
 *
 *   import { loadModel, compile, traceEntry, load, run } from 'sorac'
 *   const model = loadModel({ file: 'examples/stdit3.sora', values: { depth: 4 } })
 *   const { graph } = traceEntry(model, 'forward')
 *   const out = await run(model, { weights: 'ckpt.safetensors', inputs: { x, timestep, ... } })
 *   const clip = await generate(loadPipeline({ file: 'examples/tiny-pipeline/pipeline.sora' }), { prompts: ['a red ball'], out: 'out/a.mp4' })
 */
// models: compile, check, build
export { checkEntries, checkModel, compile, fsHost, loadModel, traceEntry } from './api/model.ts';
export type { CheckResult, CompiledModel, CompileOptions, ConfigInput, EntryInfo, ModelSource, TraceOptions, TraceResult } from './api/model.ts';
export { buildModel, emitOnnx } from './api/build.ts';
export type { BuildOptions, BuildResult } from './api/build.ts';
export { format } from './api/source.ts';
export type { Diagnostic, Span } from './core/diagnostics.ts';
export { SoracError } from './core/errors.ts';
export { CODES } from './core/codes.ts';
export type { Code } from './core/codes.ts';
export type { Keymap, KeymapEntry } from './core/keymap.ts';
export { canonicalJson, contractHash, parameterCount } from './core/keymap.ts';
export type { IrGraph } from './core/ir.ts';
export type { HostTensor } from './core/host-tensor.ts';
// running
export { load, run, runModel, ModelError } from './api/run.ts';
export type { LoadedModel, LoadOptions, RunOptions, RunResult } from './api/run.ts';
export { createSession, runGraph } from './api/session.ts';
export type { CreateSessionOptions, SoracSession } from './api/session.ts';
// pipelines: prompt -> video (docs/cli/generate.md, docs/language.md#pipelines)
export { decode, denoise, encodeText, generate, loadPipeline, planGeneration } from './api/pipeline.ts';
export type { CompiledPipeline, GenerateEvent, GenerateOptions, GenerateRequest, GenerationPlan, GenerationResult, StagePlan } from './api/pipeline.ts';
// CUDA: install the pinned provider, check the machine (docs/cli/setup.md, docs/cli/doctor.md, docs/guides/gpu.md)
export { doctor, setupCuda } from './api/devices.ts';
export type { DoctorApiOptions, DoctorCheck, DoctorReport, SetupCudaOptions, SetupCudaResult } from './api/devices.ts';
// Open-Sora training checkpoint dirs (docs/guides/training-checkpoints.md)
export { listCheckpoints, inspectCheckpoint, planPrune, pruneCheckpoints, writeTrainingCheckpoint, exportCheckpoint, verifyCheckpoint, writeManifest } from './api/training.ts';
export type { CheckpointInfo, ExperimentListing, PartInfo, PrunePlanItem, WriteTrainingCheckpointOptions, CkptVerifyReport, ExportOptions, ExportResult, Manifest } from './api/training.ts';
// Micro-batching along axes an entry declares with micro_batch() (docs/adr/005-micro-batching.md)
export { declaredMicroBatch, planMicroBatch, runMicroBatched } from './api/run.ts';
export type { MicroBatchDecl, MicroBatchPlan, MicroBatchRunOptions, MicroBatchResult } from './api/run.ts';
// Checkpoint access (docs/guides/checkpoints.md)
export { openWeights, loadReport, renderLoadReport } from './api/weights.ts';
export { detect, detectHeader, bundledModels } from './api/detect.ts';
export type { DetectCandidate, DetectOptions, DetectResult } from './api/detect.ts';
export type { TensorStore, StoredTensor, LoadReport } from './api/weights.ts';
// Shape migrations (docs/cli/migrate.md, docs/adr/004-migrations-as-data.md)
export { applyMigration, storeSignature, BUILTINS, getBuiltin, diffSignatures, composePlans, invertPlan, planHash, validatePlan, resolvePlan, planFromJson, planFromScript, migration, MigrationBuilder } from './api/migrate.ts';
export type { ApplyOptions, ApplyResult, ApplyProgress, DiffResult, Unmatched, Op, Plan } from './api/migrate.ts';
