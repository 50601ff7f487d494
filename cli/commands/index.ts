import type { RegisterCommand } from '../command.ts';
import { registerBuild } from './build.ts';
import { registerCheck } from './check.ts';
import { registerCkpt } from './ckpt.ts';
import { registerDetect } from './detect.ts';
import { registerDoctor } from './doctor.ts';
import { registerFmt } from './fmt.ts';
import { registerGenerate } from './generate.ts';
import { registerInspect } from './inspect.ts';
import { registerLsp } from './lsp.ts';
import { registerMigrate } from './migrate.ts';
import { registerRun } from './run.ts';
import { registerSetup } from './setup.ts';
import { registerVerify } from './verify.ts';

// One import per command file; keep this list sorted.
export const commands: RegisterCommand[] = [registerBuild, registerCheck, registerCkpt, registerDetect, registerDoctor, registerFmt, registerGenerate, registerInspect, registerLsp, registerMigrate, registerRun, registerSetup, registerVerify];
