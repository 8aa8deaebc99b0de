/**
 * Every door gives the same plan: for every field of the plan-field table and each of its
 * sample values (every choice, both booleans, three numbers, a few models and GPUs),
 * `bin/headroom plan --json <flag>` (a subprocess), `POST /v1/plans {field}` (a real HTTP
 * server) and the library answer the same JSON, byte for byte. The test iterates the table,
 * so a field added there is covered here without editing this file.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ExitError } from '../../src/errors.ts'
import { flagArgs, PLAN_FIELD_NAMES, planField, type PlanFieldName, type PlanRequest } from '../../src/planner/fields.ts'
import { planFromRequest, resolvePlanInput } from '../../src/request/index.ts'
import { startServer, type RunningServer } from '../../src/server/server.ts'
import { runCliAll } from './run-cli.ts'

// Fields that change memory only beside another: FSDP shards across GPUs, so it needs more than one.
// loraDropout: the default (checkpointed QLoRA) peaks at the loss, where no block's dropout tensors are alive; without
// checkpointing every block keeps them.
const CONTEXT: Partial<Record<string, PlanRequest>> = { parallelism: { gpus: 2 }, loraDropout: { gradientCheckpointing: false } }

type Outcome = { ok: true; json: string } | { ok: false; path: string | undefined }

let server: RunningServer
// The server reads config files under this directory only (headroom server --allow-path).
const allowed = mkdtempSync(join(tmpdir(), 'headroom-parity-allowed-'))
before(async () => {
  server = await startServer({ db: ':memory:', port: 0, processMetrics: false, allowPaths: [allowed] })
})
after(async () => {
  await server.close()
})

async function viaLibrary(req: PlanRequest): Promise<Outcome> {
  try {
    return { ok: true, json: JSON.stringify(await planFromRequest(req)) }
  } catch (err) {
    if (err instanceof ExitError) return { ok: false, path: err.path }
    throw err
  }
}

type HttpOutcome = { status: number; text: string; json?: string; path?: string }

async function viaHttp(req: PlanRequest): Promise<HttpOutcome> {
  const res = await fetch(`${server.url}/v1/plans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(req) })
  const text = await res.text()
  if (res.status === 200) return { status: 200, text, json: text }
  const body = JSON.parse(text) as { issues: { path: string }[] }
  return { path: body.issues[0]?.path, status: res.status, text }
}

/** Each (field, value) case of the table, as one request. */
function cases(): { field: string; value: unknown; req: PlanRequest }[] {
  const out: { field: string; value: unknown; req: PlanRequest }[] = []
  for (const name of PLAN_FIELD_NAMES) {
    const f = planField(name)
    for (const value of f.samples) out.push({ field: name, value, req: { [name]: value } as PlanRequest })
  }
  return out
}

test('the table gives every field samples: every choice, both booleans, three numbers', () => {
  for (const name of PLAN_FIELD_NAMES) {
    const f = planField(name)
    if (f.kind === 'choice') assert.deepEqual([...f.samples].sort(), [...(f.choices ?? [])].sort(), name)
    if (f.kind === 'boolean') assert.deepEqual([...f.samples].sort(), [false, true], name)
    if (f.kind === 'count' || f.kind === 'number') assert.equal(new Set(f.samples).size, 3, name)
    // config and deviceProfile name the user's files (test/sweep/calibrate.test.ts covers the profile).
    if (name !== 'config' && name !== 'deviceProfile') assert.ok(f.samples.length >= 2, `${name} has samples`)
  }
})

test('plan --json, POST /v1/plans and the library agree byte for byte on every field and value', { timeout: 240_000 }, async () => {
  const all = cases()
  // The default request rides along: the baseline the "changes the plan" check compares with.
  const requests: PlanRequest[] = [{}, ...all.map((c) => c.req), ...Object.entries(CONTEXT).flatMap(([f, ctx]) => [ctx!, ...planField(f as PlanFieldName).samples.map((v) => ({ ...ctx, [f]: v }))])]
  const cli = await runCliAll(requests.map((r) => ['plan', '--json', ...flagArgs(r)]))
  const results: { req: PlanRequest; lib: Outcome; http: Awaited<ReturnType<typeof viaHttp>>; cli: (typeof cli)[number] }[] = []
  for (const [i, req] of requests.entries()) results.push({ req, lib: await viaLibrary(req), http: await viaHttp(req), cli: cli[i] })

  for (const { req, lib, http, cli: c } of results) {
    const what = `${JSON.stringify(req)} (plan --json ${flagArgs(req).join(' ')})`
    if (lib.ok) {
      assert.equal(c.status, 0, `${what}: ${c.stderr}`)
      assert.equal(http.status, 200, `${what}: ${http.text}`)
      assert.equal(JSON.stringify(JSON.parse(c.stdout)), lib.json, `${what}: CLI vs library`)
      assert.equal(http.json, lib.json, `${what}: HTTP vs library`)
    } else {
      // An impossible combination is refused by every door, naming the same field.
      assert.equal(c.status, 2, `${what}: ${c.stdout}`)
      assert.equal(http.status, 400, what)
      assert.equal(http.path, lib.path, what)
    }
  }

  // No flag is dropped: the resolved input carries the value that was asked for.
  for (const { field, value, req } of all) {
    if (field === 'model' || field === 'gpu' || field === 'targets') continue // resolved to objects/lists, checked below
    const lib = results.find((r) => r.req === req)!.lib
    if (!lib.ok) continue
    const input = await resolvePlanInput(req)
    assert.deepEqual((input as Record<string, unknown>)[field], value, `${field}: ${JSON.stringify(value)} reaches the planner`)
  }

  // A flag that should change the plan does: some value of every field (but alpha, which
  // scales the adapter's output and costs no memory, and packing, which removes padding from
  // the batch x seq token budget and leaves the peak as it is: checked to be identical below)
  // plans differently from the default, or from its context where it needs one (CONTEXT, also
  // planned through all three doors above).
  const costsNoMemory = new Set(['alpha', 'packing', 'config'])
  for (const name of PLAN_FIELD_NAMES) {
    if (costsNoMemory.has(name) || name === 'deviceProfile') continue
    const ctx: PlanRequest = CONTEXT[name] ?? {}
    const baseline = await viaLibrary(ctx)
    assert.ok(baseline.ok)
    const plans = await Promise.all(planField(name).samples.map((v) => viaLibrary({ ...ctx, [name]: v })))
    assert.ok(plans.some((p) => p.ok && p.json !== baseline.json), `some value of ${name} changes the plan`)
  }
})

test('--grad-checkpointing and --no-grad-checkpointing give different peaks, each equal to the API', { timeout: 120_000 }, async () => {
  const on: PlanRequest = { method: 'lora', gradientCheckpointing: true }
  const off: PlanRequest = { method: 'lora', gradientCheckpointing: false }
  const [cliOn, cliOff] = await runCliAll([['plan', '--json', ...flagArgs(on)], ['plan', '--json', ...flagArgs(off)]])
  assert.deepEqual(flagArgs(on), ['--method', 'lora', '--grad-checkpointing'])
  assert.deepEqual(flagArgs(off), ['--method', 'lora', '--no-grad-checkpointing'])
  const peak = (s: string) => (JSON.parse(s) as { peakBytes: number }).peakBytes
  const [httpOn, httpOff] = [await viaHttp(on), await viaHttp(off)]
  assert.equal(peak(cliOn.stdout), peak(httpOn.text))
  assert.equal(peak(cliOff.stdout), peak(httpOff.text))
  assert.ok(peak(cliOn.stdout) < peak(cliOff.stdout), 'checkpointing keeps only block inputs: a lower peak')
})

test('--config: plan --json, POST /v1/plans and the library agree for an allowed file; a path outside the allowed roots is 403', { timeout: 60_000 }, async () => {
  const lines = ['training_config:', '  ModelConfig:', '    torch_dtype: "bfloat16"', '  LoraConfig:', '    r: 32', '  TrainingArguments:', '    output_dir: "/mnt/results"', '    per_device_train_batch_size: 2', ''].join('\n')
  const file = join(allowed, 'lora.yaml')
  writeFileSync(file, lines)
  const req: PlanRequest = { config: file, seq: 1024 }
  const [c] = await runCliAll([['plan', '--json', ...flagArgs(req)]])
  assert.equal(c.status, 0, c.stderr)
  const lib = JSON.stringify(await planFromRequest(req))
  assert.equal(JSON.stringify(JSON.parse(c.stdout)), lib)
  const http = await viaHttp(req)
  assert.equal(http.status, 200, http.text)
  assert.equal(http.json, lib)

  const outside = join(mkdtempSync(join(tmpdir(), 'headroom-parity-outside-')), 'lora.yaml')
  writeFileSync(outside, lines)
  const refused = await viaHttp({ config: outside, seq: 1024 })
  assert.equal(refused.status, 403)
  assert.equal(refused.path, 'config')
  assert.doesNotMatch(refused.text, /--/)
})

test('--packing plans the same peak as padding: the planner claims no memory it does not save', async () => {
  for (const req of [{}, { method: 'lora', seq: 8192, batch: 4 }, { attention: 'eager', seq: 4096 }] as PlanRequest[]) {
    const padded = await viaLibrary({ ...req, packing: false })
    const packed = await viaLibrary({ ...req, packing: true })
    assert.ok(padded.ok && packed.ok)
    assert.equal(packed.json, padded.json, JSON.stringify(req))
  }
})
