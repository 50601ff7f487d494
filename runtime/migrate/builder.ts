/**
 * The typed builder that migration scripts use (`import { migration } from 'sorac/migrate'`).
 * A script can only describe ops: the builder records plain data, and `sorac migrate` validates
 * what comes out (runtime/migrate/plan.ts validatePlan) before anything runs. This module has no
 * runtime imports so it loads inside the script sandbox (see script.ts).
 *
 *   export default migration({ name: 'pixart-to-stdit3' }, (m) =>
 *     m.renamePattern('blocks.(\\d+).', 'spatial_blocks.$1.').unsqueeze('x_embedder.proj.weight', 2));
 */
import type { DType } from '../../core/dtype.ts';
import type { Fill, Op, Plan } from './plan.ts';

export type { DType, Fill, Op, Plan };

/** Records ops in order; every method returns the builder so calls chain. */
export class MigrationBuilder {
  readonly #ops: Op[] = [];

  #push(op: Op): this {
    this.#ops.push(op);
    return this;
  }

  /** Rename one key exactly; with a `( … )` group in `from`, a pattern rename (`$1` in `to`). */
  rename(from: string, to: string): this {
    return /(^|[^\\])\(/.test(from) ? this.renamePattern(from, to) : this.#push({ op: 'rename', from, to });
  }
  /** Pattern rename at the start of a key segment: `blocks.(\d+).` → `spatial_blocks.$1.`. */
  renamePattern(from: string, to: string): this {
    return this.#push({ op: 'renamePattern', from, to });
  }
  drop(key: string): this {
    return this.#push({ op: 'drop', key });
  }
  unsqueeze(key: string, dim: number): this {
    return this.#push({ op: 'unsqueeze', key, dim });
  }
  squeeze(key: string, dim: number): this {
    return this.#push({ op: 'squeeze', key, dim });
  }
  /** Pass `from` (the current shape) to make the op invertible. */
  reshape(key: string, to: readonly number[], from?: readonly number[]): this {
    return this.#push({ op: 'reshape', key, to: [...to], ...(from ? { from: [...from] } : {}) });
  }
  permute(key: string, perm: readonly number[]): this {
    return this.#push({ op: 'permute', key, perm: [...perm] });
  }
  /** Split along `dim` into `into` (templates may use the key's captures: `$1`). One size may be -1. */
  split(key: string, o: { dim: number; into: readonly string[]; sizes: readonly number[] }): this {
    return this.#push({ op: 'split', key, dim: o.dim, into: [...o.into], sizes: [...o.sizes] });
  }
  /** Concatenate `from` (the first selects, the rest are templates) along `dim` into `to`; `sizes` makes it invertible. */
  concat(from: readonly string[], o: { dim: number; to: string; sizes?: readonly number[] }): this {
    return this.#push({ op: 'concat', from: [...from], dim: o.dim, to: o.to, ...(o.sizes ? { sizes: [...o.sizes] } : {}) });
  }
  slice(key: string, o: { dim: number; start: number; end: number }): this {
    return this.#push({ op: 'slice', key, dim: o.dim, start: o.start, end: o.end });
  }
  pad(key: string, o: { dim: number; after: number; before?: number; mode: 'zeros' | 'ones' | 'repeat-last' }): this {
    return this.#push({ op: 'pad', key, dim: o.dim, after: o.after, ...(o.before ? { before: o.before } : {}), mode: o.mode });
  }
  tile(key: string, o: { dim: number; times: number }): this {
    return this.#push({ op: 'tile', key, dim: o.dim, times: o.times });
  }
  untile(key: string, o: { dim: number; times: number }): this {
    return this.#push({ op: 'untile', key, dim: o.dim, times: o.times });
  }
  scale(key: string, factor: number): this {
    return this.#push({ op: 'scale', key, factor });
  }
  /** Pass `from` to make a widening cast invertible. */
  cast(key: string, to: DType, from?: DType): this {
    return this.#push({ op: 'cast', key, to, ...(from ? { from } : {}) });
  }
  init(key: string, o: { shape: readonly number[]; dtype: DType; fill: Fill }): this {
    return this.#push({ op: 'init', key, shape: [...o.shape], dtype: o.dtype, fill: { ...o.fill } as Fill });
  }

  /** The recorded ops (copies). */
  ops(): Op[] {
    return JSON.parse(JSON.stringify(this.#ops)) as Op[];
  }
}

export interface MigrationDefinition {
  readonly __soracMigration: 1;
  readonly name?: string;
  readonly description?: string;
  toPlan(defaultName: string): Plan;
}

/** Define a migration: `export default migration((m) => m.rename(…))` or `migration({ name, description }, (m) => …)`. */
export function migration(build: (m: MigrationBuilder) => unknown): MigrationDefinition;
export function migration(meta: { name?: string; description?: string }, build: (m: MigrationBuilder) => unknown): MigrationDefinition;
export function migration(a: ((m: MigrationBuilder) => unknown) | { name?: string; description?: string }, b?: (m: MigrationBuilder) => unknown): MigrationDefinition {
  const meta = typeof a === 'function' ? {} : a;
  const build = typeof a === 'function' ? a : b!;
  return {
    __soracMigration: 1,
    ...(meta.name ? { name: meta.name } : {}),
    ...(meta.description ? { description: meta.description } : {}),
    toPlan(defaultName: string): Plan {
      const m = new MigrationBuilder();
      build(m);
      return { format: 'sorac.migration/1', name: meta.name ?? defaultName, ...(meta.description ? { description: meta.description } : {}), ops: m.ops() };
    },
  };
}
