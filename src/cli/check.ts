/**
 * `headroom check <file>`: validates a KAITO tuning ConfigMap (or bare training_config)
 * against KAITO's rules, the fields the Python side accepts, and, given --model and --gpu,
 * the memory planner. Exit 0 valid (warnings allowed), 1 invalid, 2 usage.
 */
import { Command, Option } from 'commander'
import { checkConfig, type CheckResult } from '../config/check.ts'
import { capIssues } from '../config/issue-cap.ts'
import { readConfigFile } from '../config/parse.ts'
import { CHECK_TARGETS, TUNING_METHODS, type Target, type TuningMethod } from '../config/rules.ts'
import { ExitError, formatIssues, type Issue } from '../errors.ts'
import { formatGiB } from '../units.ts'

type CheckFlags = { model?: string; gpu?: string; seq?: string; method?: TuningMethod; target: Target; json?: boolean }

export function command(): Command {
  return new Command('check')
    .argument('<file>', 'ConfigMap or training_config YAML (multi-document files allowed)')
    .option('--model <model>', 'catalog id, config.json path or hub id; enables target-module and memory checks')
    .option('--gpu <gpu>', 'GPU name or instance type, e.g. A10 or Standard_NC24ads_A100_v4; enables the memory-fit check')
    .option('--seq <tokens>', 'sequence length to plan at (overrides TrainingArguments.max_length)')
    .addOption(new Option('--method <method>', 'the Workspace tuning method (KAITO checks quantization flags against it)').choices(TUNING_METHODS))
    .addOption(new Option('--target <target>', 'local, or cluster: KAITO rules on output_dir and Headroom-only fields').choices(CHECK_TARGETS).default('local'))
    .option('--json', 'print {valid, issues, warnings, plan?} as JSON')
    .action(async (file: string, flags: CheckFlags) => {
      const seq = flags.seq === undefined ? undefined : parseSeq(flags.seq)
      const bytes = await readConfigFile(file)
      const result = capIssues(await checkConfig(bytes, { file, model: flags.model, gpu: flags.gpu, seq, method: flags.method, target: flags.target }))
      process.stdout.write(flags.json ? `${JSON.stringify(jsonOf(result), null, 2)}\n` : render(file, result))
      process.exitCode = result.valid ? 0 : 1
    })
}

function parseSeq(raw: string): number {
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new ExitError(`--seq is "${raw}": give a whole number of tokens, e.g. --seq 2048`, { path: '--seq' })
  return n
}

function jsonOf(r: CheckResult) {
  return { valid: r.valid, issues: r.issues, warnings: r.warnings, ...(r.plan ? { plan: r.plan } : {}), context: r.context }
}

/** Issues grouped by section, one `file:line:col severity path: message` line each. */
function render(file: string, r: CheckResult): string {
  const lines: string[] = []
  const errors = r.issues.length
  const warnings = r.warnings.length
  const against = [r.context.model && `model ${r.context.model}`, r.context.gpu && `GPU ${r.context.gpus && r.context.gpus > 1 ? `${r.context.gpus}x ` : ''}${r.context.gpu}`, r.context.seq && `seq ${r.context.seq}`, r.context.method && `method ${r.context.method}`, r.context.target === 'cluster' && 'target cluster']
    .filter(Boolean)
    .join(', ')
  lines.push(`${file}: ${r.valid ? 'valid' : 'invalid'} (${count(errors, 'error')}, ${count(warnings, 'warning')})${against ? ` against ${against}` : ''}`)
  const groups = new Map<string, Issue[]>()
  for (const issue of [...r.issues, ...r.warnings].sort(byPosition)) {
    const key = groupOf(issue.path)
    groups.set(key, [...(groups.get(key) ?? []), issue])
  }
  for (const [group, list] of groups) {
    lines.push('', group)
    for (const line of formatIssues(list).split('\n')) lines.push(`  ${line}`)
  }
  if (r.plan) {
    const p = r.plan
    lines.push('')
    if (p.gpu && p.headroomBytes !== null) {
      lines.push(`memory: peak ${formatGiB(p.peakBytes)} of ${formatGiB(p.gpu.memoryBytes)} on the ${p.gpu.name} (${p.fits ? `headroom ${formatGiB(p.headroomBytes)}` : `short by ${formatGiB(-p.headroomBytes)}`})`)
    } else lines.push(`memory: peak ${formatGiB(p.peakBytes)} (pass --gpu to check the fit)`)
    // Say which knobs the file left to the runtime, so a surprising number can be traced.
    const defaults = Object.entries(r.context.sources ?? {}).filter(([, source]) => source.startsWith('default: '))
    if (defaults.length) lines.push(`planned with runtime defaults for: ${defaults.map(([knob, source]) => `${knob} (${source.slice('default: '.length)})`).join('; ')}`)
  }
  return `${lines.join('\n')}\n`
}

const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`

function groupOf(path: string): string {
  const head = path.split(/[.[]/)[0]
  if (['ModelConfig', 'QuantizationConfig', 'LoraConfig', 'TrainingArguments', 'DatasetConfig', 'DataCollator'].includes(head)) return head
  if (['tuning', 'resource', 'metadata', 'data', 'document'].includes(head)) return 'file'
  return head === 'training_config' ? 'training_config' : head
}

function byPosition(a: Issue, b: Issue): number {
  if ((a.file ?? '') !== (b.file ?? '')) return (a.file ?? '') < (b.file ?? '') ? -1 : 1
  return (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0)
}
