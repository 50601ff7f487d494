/**
 * One stage of `sorac generate` alone, in its own process (bench/generate.ts measures its peak RSS):
 *   npx tsx bench/generate-stage.ts PIPELINE.sora text|denoise|decode
 * Inputs have the shapes of the whole run (random values: memory does not depend on them).
 */
import { decode, denoise, encodeText, loadPipeline, planGeneration } from '../api/pipeline.ts';
import { seededNoise } from '../runtime/sampling/index.ts';

const [file, stage] = process.argv.slice(2) as [string, 'text' | 'denoise' | 'decode'];
const p = loadPipeline({ file });
const plan = await planGeneration(p, { prompts: ['a red ball moving right'], device: 'cpu' });
const B = plan.latentShape[0]!;
const rand = (n: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898) * 0.5);
if (stage === 'text') {
  await encodeText(p, plan.prompts, { maxLength: plan.maxLength, device: 'cpu' });
} else if (stage === 'denoise') {
  const C = p.components.transformer!.model!.config!.caption_channels as number;
  const L = plan.maxLength;
  await denoise(p, {
    release: plan.pipeline.release,
    latentShape: plan.latentShape,
    height: plan.height,
    width: plan.width,
    numFrames: plan.numFrames,
    fps: plan.fps,
    steps: plan.scheduler.steps,
    cfgScale: plan.scheduler.cfgScale,
    y: { dtype: 'f32', shape: [B, 1, L, C], data: rand(B * L * C) },
    mask: { dtype: 'i64', shape: [B, L], data: new BigInt64Array(B * L).fill(1n) },
    noise: seededNoise(1),
    device: 'cpu',
  });
} else {
  const n = plan.latentShape.reduce((a, b) => a * b, 1);
  await decode(p, { dtype: 'f32', shape: plan.latentShape, data: rand(n) }, { numFrames: plan.numFrames, ...(plan.vaeMicroBatch ? { microBatch: plan.vaeMicroBatch } : {}), device: 'cpu' });
}
