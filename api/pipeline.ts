/** Pipelines for API users and the CLI: compile a pipeline file, plan a generation, generate. */
export { decode, denoise, encodeText, generate, loadPipeline, MAX_PROMPT_CHARS, planGeneration } from './generate.ts';
export type { DenoiseArgs } from './generate.ts';
export type { GenerateEvent, GenerateOptions, GenerateRequest, GenerationPlan, GenerationResult, StageName, StagePlan, WeightsInfo } from './generate.ts';
export { COMPONENT_KINDS, isPipelineFile, ROLES } from '../compiler/pipeline.ts';
export type { CompiledPipeline, PipelineComponent, Role } from '../compiler/pipeline.ts';
