/**
 * Issues are neutral and rendered at the edge: the same bad plan request names `--flags` on
 * the command line and JSON fields over HTTP, with the JSON field as the path in both; an HTTP
 * answer never mentions a CLI flag, in its errors or in the plan's warnings.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { flagArgs, type PlanRequest } from '../../src/planner/fields.ts'
import { json, makeApp } from '../server/helpers.ts'
import { runCliAll } from '../planner/run-cli.ts'

// [request, the JSON field at fault, what the CLI says, what HTTP says]
const BAD: [PlanRequest, string, RegExp, RegExp][] = [
  [{ method: 'full', quant: 'nf4' }, 'quant', /--method full cannot train nf4.*use --method qlora, or drop --quant/, /method full cannot train nf4.*use method qlora, or drop quant/],
  [{ seq: 0 }, 'seq', /--seq must be a whole number of tokens/, /^seq must be a whole number of tokens/],
  [{ quant: 'int8', doubleQuant: true }, 'doubleQuant', /--double-quant applies to 4-bit quantization only: add --quant nf4/, /doubleQuant applies to 4-bit quantization only: add quant nf4/],
  [{ method: 'full', rank: 16 }, 'rank', /--rank sets the LoRA rank/, /^rank sets the LoRA rank/],
  [{ device: 'cpu', attention: 'flash' }, 'attention', /--attention flash needs a CUDA GPU/, /^attention flash needs a CUDA GPU/],
  [{ targets: ' , ' }, 'targets', /--targets is empty/, /^targets is empty/],
  [{ gpu: 'Z100' }, 'gpu', /unknown GPU or instance type "Z100".*headroom plan --list-gpus/, /unknown GPU or instance type "Z100".*GET \/v1\/gpus/],
  [{ model: 'no-such-model' }, 'model', /unknown model "no-such-model".*headroom plan --list-models/, /unknown model "no-such-model".*GET \/v1\/models/],
  [{ model: '/nonexistent/config.json' }, 'model', /does not exist/, /outside the directories this server allows/],
]
// A server path outside the allowed roots is refused before it is read (403), not a bad request.
const HTTP_STATUS = (req: PlanRequest) => (typeof req.model === 'string' && req.model.startsWith('/') ? 403 : 400)

test('the same bad request: flags on the command line, JSON fields over HTTP, the field as the path', { timeout: 120_000 }, async () => {
  const { app } = makeApp()
  const cli = await runCliAll(BAD.map(([req]) => ['plan', ...flagArgs(req)]))
  for (const [i, [req, path, cliSays, httpSays]] of BAD.entries()) {
    const what = JSON.stringify(req)
    assert.equal(cli[i].status, 2, `${what}: ${cli[i].stderr}`)
    assert.match(cli[i].stderr, cliSays, what)
    assert.equal(cli[i].stderr.trim().split('\n').length, 1, `${what}: one line, no stack trace`)
    const res = await app.request('/v1/plans', json(req))
    assert.equal(res.status, HTTP_STATUS(req), what)
    const body = (await res.json()) as { issues: { code: string; path: string; message: string }[] }
    assert.equal(body.issues[0].path, path, what)
    assert.match(body.issues[0].message, httpSays, what)
    assert.doesNotMatch(JSON.stringify(body), /--|headroom plan/, `${what}: no CLI flag over HTTP`)
  }
})

test('plan warnings: JSON fields in POST /v1/plans (and plan --json), flags in the terminal report', { timeout: 60_000 }, async () => {
  const { app } = makeApp()
  // q_proj is not a Phi-3 module; bf16 on a T4; 16-bit LoRA at 16k tokens does not fit an A10.
  const req: PlanRequest = { targets: 'q_proj,o_proj', gpu: 'T4', method: 'lora', seq: 16384 }
  const text = await (await app.request('/v1/plans', json(req))).text()
  const plan = JSON.parse(text) as { warnings: { code: string; message: string }[] }
  assert.deepEqual(plan.warnings.map((w) => w.code).sort(), ['bf16_unsupported', 'does_not_fit', 'target_unmatched'])
  assert.doesNotMatch(text, /--/)
  assert.match(text, /use targets: \\"qkv_proj,o_proj\\"/)
  const [human, asJson] = await runCliAll([['plan', ...flagArgs(req)], ['plan', '--json', ...flagArgs(req)]])
  assert.equal(human.status, 0, human.stderr)
  assert.match(human.stdout, /warning \[target_unmatched\]: .*use --targets qkv_proj,o_proj or --targets all-linear/)
  assert.match(human.stdout, /warning \[bf16_unsupported\]: .*use --dtype fp16/)
  assert.match(human.stdout, /warning \[does_not_fit\]: .*--grad-checkpointing/)
  assert.equal(JSON.stringify(JSON.parse(asJson.stdout)), text)
})
