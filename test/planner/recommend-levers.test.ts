/**
 * `plan --recommend` and `init` use the levers only where they buy a longer sequence or a bigger
 * batch, say why in numbers, and the printed command, run as printed, plans the same fit.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { maxBatch, maxSeqLen } from '../../src/planner/fit.ts'
import { recommend } from '../../src/planner/recommend.ts'
import { usableMemoryBytes } from '../../src/planner/overhead.ts'
import { resolvePlanInput } from '../../src/request/index.ts'
import type { MemoryPlan, PlanInput, Recommendation } from '../../src/planner/types.ts'
import { runCliAll } from './run-cli.ts'

type Out = { plan: MemoryPlan; recommendation: Recommendation | null; command: string[] | null }

const CASES: string[][] = [
  // Phi-3-mini's longest context on an A100-80GB: only the chunked loss reaches its 131,072 positions.
  ['--goal', 'max-context'],
  // The most tokens per step at 16k: both levers buy batch.
  ['--seq', '16384'],
  ['--model', 'llama-3.1-8b', '--seq', '32768'],
]

test('the recommended command with levers, run as printed, fits with the same peak; each lever it turns on buys something', { timeout: 240_000 }, async () => {
  const recs = await runCliAll(CASES.map((args) => ['plan', '--recommend', '--json', ...args]))
  const outs = recs.map((r, i) => {
    assert.equal(r.status, 0, `${CASES[i].join(' ')}: ${r.stderr}`)
    return JSON.parse(r.stdout) as Out
  })
  const replays = await runCliAll(outs.map((o) => [...o.command!.slice(1), '--json']))
  let leversSeen = 0
  for (const [i, replay] of replays.entries()) {
    const out = outs[i]
    const rec = out.recommendation!
    const what = `${CASES[i].join(' ')} -> ${out.command!.join(' ')}`
    assert.equal(replay.status, 0, `${what}: ${replay.stderr}`)
    const plan = JSON.parse(replay.stdout) as MemoryPlan
    assert.equal(plan.fits, true, what)
    assert.equal(plan.peakBytes, rec.plan.peakBytes, what)
    // A lever that is on is on the printed command line, and buys a longer sequence or a bigger batch than without it.
    // plan --recommend's default margin: 10% of the usable memory.
    const budget = usableMemoryBytes(rec.input.gpu!) * 0.9
    const buys = (patch: Partial<PlanInput>) => {
      const other = { ...rec.input, ...patch }
      if (CASES[i].includes('max-context')) return (maxSeqLen(other, { budgetBytes: budget }) ?? 0) < rec.input.seq
      return (maxBatch(other, { budgetBytes: budget }) ?? 0) < rec.input.batch
    }
    if (rec.input.loss === 'chunked') {
      leversSeen++
      assert.ok(out.command!.join(' ').includes('--loss chunked'), what)
      assert.ok(buys({ loss: 'full' }), `${what}: the chunked loss buys length or batch`)
      assert.match(rec.reasons.find((r) => r.knob === 'loss')!.message, /Without it the (longest sequence|largest batch)/)
    }
    if (rec.input.offloadActivations) {
      leversSeen++
      assert.ok(out.command!.includes('--offload-activations'), what)
      assert.ok(buys({ offloadActivations: false }), `${what}: offloading buys length or batch`)
      assert.match(rec.reasons.find((r) => r.knob === 'offloadActivations')!.message, /host needs [\d.]+ GiB/)
    }
  }
  assert.ok(leversSeen >= 3, 'the cases exercise both levers')
})

test('at the seed case (2,048 tokens) the search still chooses; a lever never wins a tie against the same fit without it', async () => {
  const base = await resolvePlanInput({})
  const rec = recommend(base)!
  for (const [knob, patch] of [['loss', { loss: 'full' }], ['offloadActivations', { offloadActivations: false }]] as const) {
    const withIt = rec.input[knob] === (knob === 'loss' ? 'chunked' : true)
    if (!withIt) continue
    const budget = usableMemoryBytes(base.gpu!) * 0.9
    assert.ok((maxBatch({ ...rec.input, ...patch }, { budgetBytes: budget }) ?? 0) < rec.input.batch, `${knob} is on only because it buys batch`)
  }
  // Narrowed to the full loss (init without the trainer's loss_implementation key), chunked is never chosen.
  const narrowed = recommend(base, { goal: 'max-context', losses: ['full'] })!
  assert.equal(narrowed.input.loss, 'full')
  const free = recommend(base, { goal: 'max-context' })!
  assert.ok(free.input.seq >= narrowed.input.seq)
  // Both reach Phi-3-mini's 131,072 positions (the full loss with the offloaded checkpoint); at the same length the
  // cheaper lever wins: chunking costs under 1% of speed, offloading a few percent.
  if (free.input.seq === narrowed.input.seq) assert.ok(!free.input.offloadActivations || narrowed.input.offloadActivations)
})

test('on CPU the search never offloads', async () => {
  const base = await resolvePlanInput({ device: 'cpu', gpu: 'A100-80GB', seq: 8192 })
  const rec = recommend(base)
  if (rec) assert.equal(rec.input.offloadActivations, false)
})
