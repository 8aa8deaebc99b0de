/**
 * `headroom init --model M --gpu G`: writes a KAITO tuning ConfigMap filled from the planner's
 * recommendation, with a comment on every memory knob and the predicted peak in its header.
 */
import { Command, Option } from 'commander'
import { findHardware, loadModel } from '../catalog/index.ts'
import type { RecommendGoal } from '../planner/types.ts'
import { generateTuningConfigMap } from '../config/generate.ts'
import { ExitError } from '../errors.ts'
import { checkOutputFile, writeOutputFile } from '../files.ts'
import { formatGiB } from '../units.ts'

type InitFlags = { model: string; gpu: string; seq?: string; goal: RecommendGoal; output?: string; name?: string }

export function command(): Command {
  return new Command('init')
    .requiredOption('--model <model>', 'catalog id, config.json path or hub id')
    .requiredOption('--gpu <gpu>', 'GPU name or instance type, e.g. A10 or Standard_NC24ads_A100_v4')
    .option('--seq <tokens>', 'sequence length to fit (default: the longest that fits for max-context)')
    .addOption(new Option('--goal <goal>', 'what to optimise').choices(['max-context', 'max-throughput']).default('max-context'))
    .option('--name <name>', 'ConfigMap name (default <model>-tuning-params)')
    .option('-o, --output <file>', 'write the ConfigMap here; - for stdout (default)')
    .action(async (flags: InitFlags) => {
      const seq = flags.seq === undefined ? undefined : Number(flags.seq)
      if (seq !== undefined && !(Number.isInteger(seq) && seq > 0)) {
        throw new ExitError(`--seq is "${flags.seq}": give a whole number of tokens, e.g. --seq 2048`, { path: '--seq' })
      }
      // Check -o before the search, so a bad path fails in milliseconds, not after planning.
      const toFile = flags.output !== undefined && flags.output !== '-'
      if (toFile) await checkOutputFile(flags.output!, '-o')
      const model = await loadModel(flags.model)
      const hardware = findHardware(flags.gpu)
      const out = generateTuningConfigMap({ model, hardware, seq, goal: flags.goal, name: flags.name })
      if (!out) {
        process.stderr.write(
          `headroom: nothing fits ${model.name} on the ${hardware.gpu.name} (${formatGiB(hardware.gpu.memoryBytes)})${seq ? ` at seq ${seq}` : ''}: try a shorter --seq or a GPU with more memory\n`,
        )
        process.exitCode = 1
        return
      }
      const { yaml, recommendation: rec } = out
      if (toFile) {
        await writeOutputFile(flags.output!, yaml, '-o')
        process.stderr.write(`wrote ${flags.output}: peak ${formatGiB(rec.plan.peakBytes)} of ${formatGiB(hardware.gpu.memoryBytes)} at seq ${rec.input.seq}, batch ${rec.input.batch}\n`)
      } else process.stdout.write(yaml)
    })
}
