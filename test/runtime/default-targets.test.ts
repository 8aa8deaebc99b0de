// The built-in default run (no config) adapts every linear layer of the tiny Phi-3 by its real,
// fused names, through bin/headroom and the real Python trainer (issue 8, item 9).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { e2eSkipReason, headroom, lastJsonLine, tmp } from './helpers.ts'

const skip = e2eSkipReason()
const PHI3_LINEAR = ['down_proj', 'gate_up_proj', 'o_proj', 'qkv_proj']

test('tune --max-steps 2 --json with no config trains qkv_proj, o_proj, gate_up_proj and down_proj (not lm_head)', { skip }, async () => {
  const out = join(tmp(), 'run')
  const r = await headroom(['tune', '--json', '--max-steps', '2', '--output', out])
  assert.equal(r.code, 0, r.stderr)
  const summary = lastJsonLine(r.stdout)
  assert.equal(summary.state, 'succeeded')
  const adapter = JSON.parse(readFileSync(join(summary.adapterDir as string, 'adapter_config.json'), 'utf8'))
  // peft records all-linear resolved to module paths (model.layers.0.self_attn.qkv_proj, ...).
  const leaves = [...new Set((adapter.target_modules as string[]).map((t) => t.split('.').at(-1)!))].sort()
  assert.deepEqual(leaves, PHI3_LINEAR)
  assert.doesNotMatch(r.stderr, /target_unmatched/)
})
