/** POST /v1/plans, POST /v1/checks, GET /v1/models and /v1/gpus against the real planner, checker and catalog. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { planFromRequest } from '../../src/request/index.ts'
import { QLORA_PARAMS_TEMPLATE } from '../../src/config/templates.ts'
import { json, makeApp } from './helpers.ts'

type Issues = { issues: { code: string; path: string; message: string }[] }

test('POST /v1/plans answers the MemoryPlan the library (and plan --json) computes for the same flags', async () => {
  const { app } = makeApp()
  const cases = [
    {},
    { model: 'phi-3-mini-128k-instruct', gpu: 'A100-80GB', method: 'lora', dtype: 'bf16', quant: 'none', seq: 4096, batch: 2, rank: 16 },
    { method: 'qlora', doubleQuant: false, targets: 'all-linear', attention: 'eager', gradientCheckpointing: true, optimizer: 'paged_adamw_8bit', gpu: 'A10', phase: 'load' },
  ]
  for (const flags of cases) {
    const res = await app.request('/v1/plans', json(flags))
    assert.equal(res.status, 200, JSON.stringify(flags))
    assert.deepEqual(await res.json(), JSON.parse(JSON.stringify(await planFromRequest(flags))))
  }
  const plan = (await (await app.request('/v1/plans', json({}))).json()) as { model: { name: string }; gpu: { name: string }; breakdown: Record<string, number>; peakBytes: number }
  assert.equal(plan.model.name, 'phi-3-mini-128k-instruct')
  assert.equal(plan.gpu.name, 'A100-80GB')
  assert.equal(Object.values(plan.breakdown).reduce((a, b) => a + b, 0), plan.peakBytes)
})

test('POST /v1/plans rejects bad flags with a 400 naming the field', async () => {
  const { app } = makeApp()
  const cases: [unknown, string][] = [
    [{ seq: 0 }, 'seq'],
    [{ batch: 'two' }, 'batch'],
    [{ method: 'dora' }, 'method'],
    [{ rnak: 8 }, 'rnak'],
    [{ model: 'no-such-model' }, 'model'],
    [{ gpu: 'Z9000' }, 'gpu'],
    [[1, 2], 'body'],
  ]
  for (const [body, path] of cases) {
    const res = await app.request('/v1/plans', json(body))
    assert.equal(res.status, 400, JSON.stringify(body))
    const { issues } = (await res.json()) as Issues
    assert.equal(issues[0].path, path, JSON.stringify(body))
    assert.ok(issues[0].message.length > 10)
  }
  const malformed = await app.request('/v1/plans', json('{"seq": '))
  assert.equal(malformed.status, 400)
  assert.equal(((await malformed.json()) as Issues).issues[0].code, 'invalid_json')
})

test('POST /v1/checks validates a KAITO ConfigMap and plans it', async () => {
  const { app } = makeApp()
  let res = await app.request('/v1/checks', json({ config: QLORA_PARAMS_TEMPLATE, model: 'phi-3-mini-128k-instruct', gpu: 'A100-80GB', seq: 2048 }))
  assert.equal(res.status, 200)
  const ok = (await res.json()) as { valid: boolean; issues: unknown[]; plan?: { peakBytes: number } }
  assert.equal(ok.valid, true, JSON.stringify(ok.issues))
  assert.ok(ok.plan && ok.plan.peakBytes > 0)

  const broken = QLORA_PARAMS_TEMPLATE.replace('per_device_train_batch_size', 'per_device_train_bach_size')
  res = await app.request('/v1/checks', json({ config: broken }))
  assert.equal(res.status, 200, 'an invalid config is a successful check with valid: false')
  const bad = (await res.json()) as { valid: boolean; issues: { path: string; message: string }[] }
  assert.equal(bad.valid, false)
  assert.ok(bad.issues.some((i) => /per_device_train_bach_size/.test(i.path + i.message)), JSON.stringify(bad.issues))

  for (const [body, path] of [[{}, 'config'], [{ config: 'x', gpu: 'A10', extra: 1 }, 'extra'], [{ config: 'x', method: 'full' }, 'method']] as const) {
    res = await app.request('/v1/checks', json(body))
    assert.equal(res.status, 400, JSON.stringify(body))
    assert.equal(((await res.json()) as Issues).issues[0].path, path)
  }
  res = await app.request('/v1/checks', json({ config: QLORA_PARAMS_TEMPLATE, gpu: 'Z9000' }))
  assert.equal(res.status, 400)
})

test('GET /v1/models and /v1/gpus list the catalog', async () => {
  const { app } = makeApp()
  const { models } = (await (await app.request('/v1/models')).json()) as { models: { name: string; params: number; maxPositionEmbeddings: number }[] }
  const phi = models.find((m) => m.name === 'phi-3-mini-128k-instruct')
  assert.ok(phi)
  assert.equal(phi.params, 3_821_079_552)
  assert.equal(phi.maxPositionEmbeddings, 131_072)
  const { gpus } = (await (await app.request('/v1/gpus')).json()) as { gpus: { name: string; memoryBytes: number }[] }
  assert.ok(gpus.some((g) => g.name === 'A100-80GB' && g.memoryBytes > 0))
})

test('POST /v1/plans and `headroom plan --json` print the same plan for the same flags', async () => {
  const { spawnSync } = await import('node:child_process')
  const { join } = await import('node:path')
  const cli = spawnSync(join(import.meta.dirname, '../../bin/headroom'), ['plan', '--json', '--method', 'lora', '--seq', '4096', '--gpu', 'A10', '--rank', '16', '--batch', '2'], { encoding: 'utf8' })
  assert.equal(cli.status, 0, cli.stderr)
  const { app } = makeApp()
  const res = await app.request('/v1/plans', json({ method: 'lora', seq: 4096, gpu: 'A10', rank: 16, batch: 2 }))
  assert.deepEqual(await res.json(), JSON.parse(cli.stdout))
})

test('GET /v1/plan-fields serves the plan-field table the dashboard builds its form from', async () => {
  const { PLAN_FIELD_NAMES, PLAN_FIELDS } = await import('../../src/planner/fields.ts')
  const { app } = makeApp()
  const res = await app.request('/v1/plan-fields')
  assert.equal(res.status, 200)
  const { fields } = (await res.json()) as { fields: { name: string; flag: string; kind: string; choices?: string[]; default: unknown; schema?: unknown }[] }
  assert.deepEqual(fields.map((f) => f.name), PLAN_FIELD_NAMES)
  const gc = fields.find((f) => f.name === 'gradientCheckpointing')
  assert.equal(gc?.flag, '--grad-checkpointing')
  assert.equal(gc?.kind, 'boolean')
  assert.deepEqual(fields.find((f) => f.name === 'attention')?.choices, [...PLAN_FIELDS.attention.choices])
  assert.equal(fields.find((f) => f.name === 'seq')?.default, 2048)
  assert.ok(fields.every((f) => f.schema === undefined), 'no zod internals on the wire')
})
