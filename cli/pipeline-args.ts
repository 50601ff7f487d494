/** Rendering for pipeline files: diagnostics with code frames from the pipeline and every component's sources. */
import type { CompiledPipeline } from '../api/pipeline.ts';
import type { CliIO } from './io.ts';
import { renderDiagnostics } from './render.ts';

export function pipelineSources(p: CompiledPipeline): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of p.program.files.values()) out.set(f.display, f.text);
  for (const c of Object.values(p.components)) for (const f of c?.model?.program.files.values() ?? []) out.set(f.display, f.text);
  return out;
}

export function printPipelineDiagnostics(p: CompiledPipeline, io: CliIO): void {
  if (!p.diagnostics.length) return;
  io.stderr(renderDiagnostics(p.diagnostics, pipelineSources(p), { pretty: io.isTTY, color: io.color }));
}
