/**
 * Shape migrations between model versions (docs/cli/migrate.md, docs/adr/004-migrations-as-data.md):
 * plans as data, built-ins, diffs of two signatures, editable TypeScript migrations, streaming apply.
 */
export { applyMigration, storeSignature, type ApplyOptions, type ApplyProgress, type ApplyResult } from '../runtime/migrate/apply.ts';
export { BUILTINS, getBuiltin } from '../runtime/migrate/builtins.ts';
export { generateMigration } from '../runtime/migrate/codegen.ts';
export { diffSignatures, type DiffResult, type Unmatched } from '../runtime/migrate/diff.ts';
export { composePlans, describeOp, invertPlan, planHash, validatePlan, type Op, type Plan } from '../runtime/migrate/plan.ts';
export { resolvePlan, type Sig } from '../runtime/migrate/resolve.ts';
export { planFromJson, planFromScript } from '../runtime/migrate/script.ts';
export { migration, MigrationBuilder } from '../runtime/migrate/builder.ts';
