/**
 * `plan --recommend` is honest: the command it prints, run as printed, plans a configuration
 * that fits with the same peak; it never picks bf16 on a GPU without bf16; and no printed flag
 * is a no-op (dropping any one, but the method, changes what the planner is asked).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { isDeepStrictEqual } from 'node:util'
import { findHardware } from '../../src/catalog/index.ts'
import { PLAN_FIELD_NAMES, PLAN_FIELDS } from '../../src/planner/fields.ts'
import { recommend } from '../../src/planner/recommend.ts'
import { resolvePlanInput } from '../../src/request/index.ts'
import type { MemoryPlan, Recommendation } from '../../src/planner/types.ts'
import { runCliAll } from './run-cli.ts'

const COMBOS: string[][] = [
  ['--method', 'full', '--gpu', 'T4'],
  [],
  ['--method', 'lora', '--gpu', 'A10'],
  ['--model', 'llama-3.1-8b', '--gpu', 'T4'],
  ['--model', 'qwen2.5-0.5b', '--method', 'full', '--gpu', 'V100-16GB'],
  ['--model', 'llama-3.1-70b', '--gpu', 'Standard_NC48ads_A100_v4', '--seq', '4096'],
  ['--model', 'mistral-7b-v0.3', '--gpu', 'L4', '--method', 'lora', '--goal', 'max-context'],
  ['--gpu', 'T4', '--grad-checkpointing', '--attention', 'eager'],
]

type Out = { plan: MemoryPlan; recommendation: Recommendation | null; command: string[] | null }

test('the printed recommendation, run as printed, fits with the same peak and respects the GPU dtypes', { timeout: 240_000 }, async () => {
  const recs = await runCliAll(COMBOS.map((args) => ['plan', '--recommend', '--json', ...args]))
  const outs = recs.map((r, i) => {
    assert.equal(r.status, 0, `${COMBOS[i].join(' ')}: ${r.stderr}`)
    return JSON.parse(r.stdout) as Out
  })
  const commands = outs.map((o, i) => {
    assert.ok(o.recommendation && o.command, `${COMBOS[i].join(' ')}: something fits`)
    assert.deepEqual(o.command.slice(0, 2), ['headroom', 'plan'])
    return o.command.slice(1)
  })
  const replays = await runCliAll(commands.map((c) => [...c, '--json']))
  for (const [i, replay] of replays.entries()) {
    const what = `${COMBOS[i].join(' ') || '(defaults)'} -> ${commands[i].join(' ')}`
    assert.equal(replay.status, 0, `${what}: ${replay.stderr}`)
    const plan = JSON.parse(replay.stdout) as MemoryPlan
    assert.equal(plan.fits, true, what)
    assert.equal(plan.peakBytes, outs[i].recommendation!.plan.peakBytes, what)
    const input = outs[i].recommendation!.input
    assert.ok(input.gpu, what)
    if (!input.gpu.bf16) assert.notEqual(input.dtype, 'bf16', `${what}: the ${input.gpu.name} has no bf16`)
  }
})

test('no printed flag is a no-op: dropping any one but the method changes the resolved input', { timeout: 120_000 }, async () => {
  const [r] = await runCliAll([['plan', '--recommend', '--json', '--method', 'full', '--gpu', 'T4']])
  const out = JSON.parse(r.stdout) as Out
  const args = out.command!.slice(2)
  const flags = new Map(PLAN_FIELD_NAMES.map((n) => [PLAN_FIELDS[n].flag as string, n]))
  const request = requestOfArgs(args, flags)
  assert.equal(request.gpu, 'T4', 'what the user typed stays')
  const full = await resolvePlanInput(request)
  for (const key of Object.keys(request)) {
    if (key === 'method') continue
    const { [key]: _dropped, ...without } = request
    assert.ok(!isDeepStrictEqual(await resolvePlanInput(without), full), `${key} in "${args.join(' ')}" is not a no-op`)
  }
})

test('recommend() never picks bf16 on a GPU without it, and keeps bf16 where the GPU has it', async () => {
  for (const [gpuName, bf16] of [['T4', false], ['V100-16GB', false], ['A10', true]] as const) {
    const base = await resolvePlanInput({ gpu: gpuName, dtype: 'bf16', method: 'qlora' })
    assert.equal(findHardware(gpuName).gpu.bf16, bf16)
    const rec = recommend(base)
    assert.ok(rec)
    assert.equal(rec.input.dtype, bf16 ? 'bf16' : 'fp16', gpuName)
    if (!bf16) assert.ok(rec.reasons.some((x) => x.knob === 'dtype' && /no native bf16/.test(x.message)))
  }
})

/** Reads `--flag value` / `--flag` / `--no-flag` back into request fields. */
function requestOfArgs(args: string[], flags: Map<string, string>): Record<string, unknown> {
  const req: Record<string, unknown> = {}
  for (let i = 0; i < args.length; i++) {
    const a = args[i]
    if (a.startsWith('--no-') && flags.has(`--${a.slice(5)}`)) req[flags.get(`--${a.slice(5)}`)!] = false
    else if (PLAN_FIELDS[flags.get(a) as keyof typeof PLAN_FIELDS]?.kind === 'boolean') req[flags.get(a)!] = true
    else {
      const v = args[++i]
      req[flags.get(a)!] = /^\d+(\.\d+)?$/.test(v) ? Number(v) : v
    }
  }
  return req
}
