/** Shared by the sweep tests: the trainer's default config, the codec's decode, bin/headroom with an environment. */
import { join } from 'node:path'
import { decode as codecDecode, type DecodeContext, type Sections } from '../../src/config/codec.ts'
import { readSections } from '../../src/runtime/prediction.ts'
import { runCli as runHeadroom, type CliOptions, type CliResult } from '../planner/run-cli.ts'

export const ROOT = join(import.meta.dirname, '..', '..')

/** The trainer's default training_config (python/headroom_runtime/default_config.yaml). */
export function readSectionsForTest(): Sections {
  return readSections(join(ROOT, 'python', 'headroom_runtime', 'default_config.yaml'))
}

export function decode(sections: Sections, ctx: DecodeContext) {
  return codecDecode(sections, ctx)
}

export type { CliResult } from '../planner/run-cli.ts'

/** `headroom <args>` as a subprocess, from the repository root, with extra environment. */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  return runHeadroom(args, { timeoutMs: 600_000, cwd: ROOT, ...opts })
}
