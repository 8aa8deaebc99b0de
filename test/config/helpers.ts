/** Runs the rules on YAML text with an explicit model and GPU, without the planner. */
import type { Issue } from '../../src/errors.ts'
import type { Hardware, ModelArch } from '../../src/catalog/types.ts'
import { bySeverity, locateIssues, readTuningFile } from '../../src/config/parse.ts'
import { runRules, type Target, type TuningMethod } from '../../src/config/rules.ts'

export function ruleIssues(
  text: string,
  opts: { model?: ModelArch; hardware?: Hardware; method?: TuningMethod; target?: Target; file?: string } = {},
): { issues: Issue[]; warnings: Issue[] } {
  const tf = readTuningFile(text, { file: opts.file })
  const all = [...tf.issues]
  for (const unit of tf.units) {
    if (!unit.raw) continue
    all.push(...locateIssues(unit, runRules({ config: unit.raw, target: opts.target ?? 'local', method: opts.method, model: opts.model, hardware: opts.hardware })))
  }
  return bySeverity(all)
}

/** A bare training_config document from section lines (already indented under training_config). */
export function bare(body: string): string {
  return `training_config:\n${body}\n`
}
