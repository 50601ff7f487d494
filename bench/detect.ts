/**
 * `sorac detect` bench: `npx tsx bench/detect.ts [--runs N]`
 *
 * Detection over all bundled models (examples/*.sora, fourteen) on release-size headers (STDiT3-XL/2: 973,
 * MMDiT 11B: 1082, STDiT2-XL/2: 707, T5-XXL encoder: 220, Open-Sora 1.3's STDiT3 at its released config,
 * CLIP ViT-L/14 text, the Flux AE, DC-AE f32t4c128), in one process:
 *   cold  = the first detection (parses the models and traces their default keymaps, then infers)
 *   warm  = later detections of other headers (parsed models and default key patterns cached; the
 *           config inference itself runs again, nothing of it is cached between headers)
 * Headers are built in memory from the keymaps (detectHeader: the part after reading the header;
 * reading a safetensors header is measured in bench/checkpoint-headers.ts). Prints numbers only.
 */
import { bundledModels, detectHeader } from '../api/detect.ts';
import { compile } from '../compiler/compile.ts';
import { fsHost } from '../compiler/host.ts';

const args = process.argv.slice(2);
const runs = Number(args[args.indexOf('--runs') + 1] ?? 3) || 3;

function header(model: string): Map<string, readonly number[]> {
  // the examples' defaults are the released configs, but for Open-Sora 1.3's STDiT3 (its defaults are STDiT3Config's)
  const values = model === 'stdit3_v13' ? { qk_norm: true, kernel_size: [8, 8, -1], use_spatial_rope: true } : undefined;
  const m = compile({ file: `examples/${model}.sora`, host: fsHost, ...(values ? { config: { values } } : {}) });
  return new Map(Object.entries(m.keymap!.tensors).filter(([, e]) => !e.alias).map(([k, e]) => [k, e.shape]));
}

const models = ['stdit3', 'mmdit', 'stdit2', 't5', 'stdit3_v13', 'clip_text', 'flux_ae', 'dc_ae'];
const headers = new Map(models.map((m) => [m, header(m)]));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`node ${process.version}, ${runs} warm runs per header, all ${bundledModels().length} bundled models tried each time`);
let t = performance.now();
const first = detectHeader(headers.get('stdit3')!);
console.log(`cold  stdit3 (${headers.get('stdit3')!.size} tensors): ${(performance.now() - t).toFixed(0)} ms -> ${first[0]!.model} ${first[0]!.version} exact=${first[0]!.exact}`);
console.log('| header | tensors | detected | exact | warm median ms | min ms |');
console.log('|---|---|---|---|---|---|');
for (const m of models) {
  const h = headers.get(m)!;
  const times: number[] = [];
  let top = '';
  let exact = false;
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    const c = detectHeader(h);
    times.push(performance.now() - t);
    top = `${c[0]!.model} ${c[0]!.version}`;
    exact = c[0]!.exact;
  }
  console.log(`| ${m} | ${h.size} | ${top} | ${exact} | ${median(times).toFixed(0)} | ${Math.min(...times).toFixed(0)} |`);
}
