/**
 * The levers of issue 13 (chunked loss, offloaded checkpoints, packing) as planner terms: each
 * value is recomputed here from the formula in docs/memory-model.md ("Levers"), by hand from
 * the model's shape, not read back from the code.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LOSS_BYTES_PER_LOGIT, LOSS_CHUNK_TOKENS, lossBytes } from '../../src/planner/logits.ts'
import { OFFLOAD_RESIDENT_BLOCKS } from '../../src/planner/activations.ts'
import { memoryTerms } from '../../src/planner/peak.ts'
import { planMemory } from '../../src/planner/plan.ts'
import { phi3Mini, seedInput } from './fixtures.ts'

const V = phi3Mini.vocabSize // 32,064
const H = phi3Mini.hiddenSize // 3,072
const L = phi3Mini.numLayers // 32

test('chunked loss: one chunk of 1,024 tokens x V x 12 B plus the b x s x h gradient of the final hidden states', () => {
  assert.equal(LOSS_CHUNK_TOKENS, 1024)
  // 131,072 tokens, fp32 stream (peft's k-bit preparation): 1,024 x 32,064 x 12 + 131,072 x 3,072 x 4.
  assert.equal(lossBytes('chunked', V, 1, 131_072, H * 4), 1024 * 32_064 * 12 + 131_072 * 3072 * 4)
  assert.equal(lossBytes('chunked', V, 1, 131_072, H * 4), 394_002_432 + 1_610_612_736)
  // Fewer tokens than a chunk: the chunk is the batch.
  assert.equal(lossBytes('chunked', V, 2, 256, H * 2), 512 * V * LOSS_BYTES_PER_LOGIT + 512 * H * 2)
  // full is unchanged: b x s x V x 12.
  assert.equal(lossBytes('full', V, 1, 131_072, H * 4), 131_072 * V * 12)
})

test('chunked loss lowers the seed case at 16k tokens, where the full loss sets the peak; the block then sets it', () => {
  // Seed case (QLoRA, checkpointing, sdpa) at 16,384 tokens: the loss sets the peak with the full loss.
  const full = memoryTerms({ ...seedInput, seq: 16_384, loss: 'full' })
  const chunked = memoryTerms({ ...seedInput, seq: 16_384, loss: 'chunked' })
  assert.equal(full.moment, 'loss')
  assert.equal(full.breakdown.logits, 16_384 * V * 12)
  assert.ok(chunked.peakBytes < full.peakBytes)
  // The chunk (1,024 x V x 12 B + 16,384 x h x 4 B = 0.6 GB) is below one block's backward: that moment wins now.
  assert.equal(chunked.moment, 'block')
  assert.equal(chunked.breakdown.logits, 0)
  // Absent means full: inputs written before the levers plan as before.
  assert.equal(memoryTerms({ ...seedInput, seq: 16_384 }).peakBytes, full.peakBytes)
})

test('offloaded checkpoint: 2 blocks of b x s x h x 4 B on the device instead of 32', () => {
  assert.equal(OFFLOAD_RESIDENT_BLOCKS, 2)
  const seq = 16_384
  const on = memoryTerms({ ...seedInput, seq, offloadActivations: true })
  const off = memoryTerms({ ...seedInput, seq, offloadActivations: false })
  // The seed case's stream is fp32 (k-bit preparation): a block input is s x h x 4 B.
  const checkpoint = seq * H * 4
  assert.equal(off.moment, 'loss')
  assert.equal(on.moment, 'loss')
  assert.equal(off.breakdown.activations - on.breakdown.activations, (L - 2) * checkpoint)
  // At the loss the final norm's fp32 input (finalNormBytesPerToken, s x h x 4 B) is alive beside the 2 resident blocks.
  assert.equal(on.breakdown.activations, 2 * checkpoint + seq * H * 4)
  // All 32 block inputs live in pinned host memory; none without offloading.
  assert.equal(on.hostBytes, L * checkpoint)
  assert.equal(off.hostBytes, 0)
})

test('offloading does nothing without checkpointing, or on CPU, and the plan says so', () => {
  const noCkpt = { ...seedInput, method: 'lora' as const, quant: 'none' as const, doubleQuant: false, gradientCheckpointing: false, seq: 1024 }
  assert.equal(memoryTerms({ ...noCkpt, offloadActivations: true }).peakBytes, memoryTerms(noCkpt).peakBytes)
  assert.ok(planMemory({ ...noCkpt, offloadActivations: true }).warnings.some((w) => w.code === 'offload_no_effect' && /gradientCheckpointing: true/.test(w.message)))
  const cpu = { ...seedInput, device: 'cpu' as const, gpu: null, seq: 1024 }
  assert.equal(memoryTerms({ ...cpu, offloadActivations: true }).peakBytes, memoryTerms(cpu).peakBytes)
  assert.ok(planMemory({ ...cpu, offloadActivations: true }).warnings.some((w) => w.code === 'offload_no_effect' && /device: "cpu"/.test(w.message)))
  assert.ok(!planMemory({ ...seedInput, offloadActivations: true }).warnings.some((w) => w.code === 'offload_no_effect'))
})

test('packing changes no memory term: batch x seq is the token budget either way', () => {
  for (const seq of [512, 4096, 32_768]) {
    assert.deepEqual(memoryTerms({ ...seedInput, seq, packing: true }).breakdown, memoryTerms({ ...seedInput, seq, packing: false }).breakdown)
  }
})

test('Phi-3-mini QLoRA at 131,072 tokens on an A100-80GB: each lever lowers the peak, both together fit', () => {
  const at = (loss: 'full' | 'chunked', offloadActivations: boolean) => planMemory({ ...seedInput, seq: 131_072, loss, offloadActivations })
  const none = at('full', false)
  const chunked = at('chunked', false)
  const offloaded = at('full', true)
  const both = at('chunked', true)
  assert.equal(none.fits, false)
  assert.ok(chunked.peakBytes < none.peakBytes)
  assert.ok(offloaded.peakBytes < none.peakBytes)
  assert.ok(both.peakBytes < chunked.peakBytes && both.peakBytes < offloaded.peakBytes)
  assert.equal(both.fits, true)
  assert.equal(both.maxSeqLen, 131_072)
  // What sets the peak with both: one block's backward at 131,072 tokens, not the loss.
  assert.equal(memoryTerms({ ...seedInput, seq: 131_072, loss: 'chunked', offloadActivations: true }).moment, 'block')
})

test('a plan that does not fit names only the levers that lower it', () => {
  const big = planMemory({ ...seedInput, seq: 131_072 })
  const msg = big.warnings.find((w) => w.code === 'does_not_fit')!.message
  assert.match(msg, /loss: "chunked"/)
  assert.match(msg, /offloadActivations: true/)
  // With both on, neither is suggested again.
  const both = planMemory({ ...seedInput, seq: 131_072, batch: 4, loss: 'chunked', offloadActivations: true })
  const msg2 = both.warnings.find((w) => w.code === 'does_not_fit')!.message
  assert.doesNotMatch(msg2, /loss|offload/)
})

test('hostile lever values: plan --loss bogus and a non-boolean offloadActivations are usage errors naming the choices', async () => {
  const { runCli } = await import('./run-cli.ts')
  const { resolvePlanInput } = await import('../../src/request/index.ts')
  const { ExitError } = await import('../../src/errors.ts')
  const r = await runCli(['plan', '--loss', 'bogus'])
  assert.equal(r.status, 2)
  assert.match(r.stderr, /'bogus' is invalid\. Allowed choices are full, chunked/)
  assert.doesNotMatch(r.stderr, /\n\s+at /)
  await assert.rejects(resolvePlanInput({ loss: 'bogus' }), (e: Error) => e instanceof ExitError && e.exitCode === 2 && /loss must be one of full, chunked; got "bogus"/.test(e.message))
  await assert.rejects(resolvePlanInput({ offloadActivations: 'yes' }), (e: Error) => e instanceof ExitError && /offloadActivations must be true or false; got "yes"/.test(e.message))
  await assert.rejects(resolvePlanInput({ packing: 1 }), (e: Error) => e instanceof ExitError && /packing must be true or false; got 1/.test(e.message))
})
