/**
 * `headroom submit` as a process against a loopback stand-in of the API server
 * (fake-apiserver.ts): what it sends (server-side apply, field manager, dry run, namespace,
 * the objects in order) and how each refusal of the server reads. A last test submits to a
 * real cluster when KUBECONFIG is set.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { FakeApiServer } from './fake-apiserver.ts'
import { BIN, headroom } from './cli.ts'
import { admit } from '../../src/k8s/submit-admission.ts'
import { applyOrder } from '../../src/k8s/submit.ts'

const FIX = join(import.meta.dirname, '../fixtures/k8s')
const JOB = join(FIX, 'job.yaml')
const WORKSPACE = join(FIX, 'workspace.yaml')

let dir: string
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'headroom-submit-'))
})
after(() => rmSync(dir, { recursive: true, force: true }))

async function withServer(fn: (api: FakeApiServer, kubeconfig: string) => Promise<void>, setup?: (api: FakeApiServer) => void): Promise<void> {
  const api = new FakeApiServer()
  setup?.(api)
  await api.start()
  const sub = mkdtempSync(join(dir, 'k-'))
  try {
    await fn(api, api.kubeconfig(sub))
  } finally {
    await api.close()
  }
}

const fixtureObjects = (file: string) => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS())

test('submit -f applies the ConfigMap before the Job with server-side apply as field manager headroom, into the context namespace', async () => {
  await withServer(async (api, kubeconfig) => {
    const r = await headroom(['submit', '-f', JOB, '--kubeconfig', kubeconfig])
    assert.equal(r.status, 0, r.stderr)
    const patches = api.requests.filter((q) => q.method === 'PATCH')
    assert.deepEqual(
      patches.map((p) => p.path),
      ['/api/v1/namespaces/ml/configmaps/tune-phi3-config', '/apis/batch/v1/namespaces/ml/jobs/tune-phi3'],
    )
    for (const p of patches) {
      assert.equal(p.contentType, 'application/apply-patch+yaml')
      assert.equal(p.query.get('fieldManager'), 'headroom')
      assert.equal(p.query.get('force'), null, 'force only with --force')
      assert.equal(p.query.get('dryRun'), null)
      assert.equal(p.authorization, 'Bearer fake-token', 'the kubeconfig user’s token is sent')
    }
    // The bodies are the file's objects, namespace filled in from the context, nothing dropped.
    const [job, cm] = fixtureObjects(JOB)
    assert.deepEqual(patches[0].body, { ...cm, metadata: { ...cm.metadata, namespace: 'ml' } })
    assert.deepEqual(patches[1].body, { ...job, metadata: { ...job.metadata, namespace: 'ml' } })
    assert.ok(api.get('batch/v1', 'jobs', 'ml', 'tune-phi3'), 'the Job is stored')
    assert.match(r.stdout, /configmap\/tune-phi3-config in namespace ml serverside-applied\njob\/tune-phi3 in namespace ml serverside-applied/)
    assert.match(r.stderr, /headroom status tune-phi3 --namespace ml --follow/)
  })
})

test('--dry-run server sends dryRun=All and persists nothing; --namespace and --force reach the request; --json lists the answers', async () => {
  await withServer(async (api, kubeconfig) => {
    const r = await headroom(['submit', '-f', JOB, '--kubeconfig', kubeconfig, '--dry-run', 'server', '--namespace', 'default', '--force', '--json'])
    assert.equal(r.status, 0, r.stderr)
    const patches = api.requests.filter((q) => q.method === 'PATCH')
    assert.equal(patches.length, 2)
    for (const p of patches) {
      assert.equal(p.query.get('dryRun'), 'All')
      assert.equal(p.query.get('force'), 'true')
      assert.match(p.path, /^\/api(s\/batch)?\/v1\/namespaces\/default\//)
    }
    assert.equal(api.objects.size, 0, 'a server dry run stores nothing')
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    assert.equal(out.dryRun, true)
    assert.equal(out.context, 'fake')
    assert.deepEqual(out.applied.map((a: { kind: string; namespace: string }) => `${a.kind}@${a.namespace}`), ['ConfigMap@default', 'Job@default'])
  })
})

test('--context picks another context (no namespace there: default); an unknown one lists the known ones', async () => {
  await withServer(async (api, kubeconfig) => {
    const r = await headroom(['submit', '-f', JOB, '--kubeconfig', kubeconfig, '--context', 'other'])
    assert.equal(r.status, 0, r.stderr)
    assert.ok(api.find('/namespaces/default/jobs/tune-phi3', 'PATCH').length)
    const bad = await headroom(['submit', '-f', JOB, '--kubeconfig', kubeconfig, '--context', 'prod'])
    assert.equal(bad.status, 1)
    assert.match(bad.stderr, /--context prod is not in the kubeconfig: use one of fake, other/)
  })
})

test('KUBECONFIG is used when --kubeconfig is not given; no kubeconfig at all is one line with the fix', async () => {
  await withServer(async (api, kubeconfig) => {
    const r = await headroom(['submit', '-f', JOB], { KUBECONFIG: kubeconfig })
    assert.equal(r.status, 0, r.stderr)
    assert.equal(api.requests.filter((q) => q.method === 'PATCH').length, 2)
  })
  const none = await headroom(['submit', '-f', JOB], { KUBECONFIG: '', HOME: dir })
  assert.equal(none.status, 1)
  assert.match(none.stderr, /no kubeconfig found .*pass --kubeconfig FILE, set KUBECONFIG/)
  assert.doesNotMatch(none.stderr, /\n\s+at /)
})

test('a Workspace on a cluster without KAITO is refused before anything is sent, naming the fix', async () => {
  await withServer(
    async (api, kubeconfig) => {
      const r = await headroom(['submit', '-f', WORKSPACE, '--kubeconfig', kubeconfig])
      assert.equal(r.status, 1)
      assert.match(r.stderr, /no kaito\.sh\/v1beta1 Workspace API: KAITO's workspace controller is not installed\. Install it .* or render for a plain cluster with --target job/)
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
      assert.equal(api.requests.filter((q) => q.method === 'PATCH').length, 0, 'not even the ConfigMap was applied')
    },
    (api) => (api.kaito = false),
  )
})

test('with KAITO installed, KAITO’s own example Workspace and ConfigMap are applied as they are', async () => {
  await withServer(async (api, kubeconfig) => {
    const r = await headroom(['submit', '-f', WORKSPACE, '--kubeconfig', kubeconfig])
    assert.equal(r.status, 0, r.stderr)
    const patches = api.requests.filter((q) => q.method === 'PATCH')
    assert.deepEqual(patches.map((p) => p.path), ['/api/v1/namespaces/ml/configmaps/optimized-phi3-tuning', '/apis/kaito.sh/v1beta1/namespaces/ml/workspaces/workspace-tuning-phi-3'])
    const [ws] = fixtureObjects(WORKSPACE)
    assert.deepEqual((patches[1].body as { tuning: unknown }).tuning, ws.tuning)
  })
})

const refusals: { name: string; fault: Parameters<FakeApiServer['faults']['push']>[0]; want: RegExp; alreadyApplied?: boolean }[] = [
  {
    name: '403 Forbidden: the RBAC fix',
    fault: { method: 'PATCH', pathIncludes: '/jobs/', status: 403, reason: 'Forbidden', message: 'jobs.batch "tune-phi3" is forbidden: User "dev" cannot patch resource "jobs" in API group "batch" in the namespace "ml"' },
    want: /not allowed to apply Job tune-phi3 in namespace ml \(403 Forbidden\): jobs\.batch "tune-phi3" is forbidden: .*Ask the cluster admin for a Role that allows "patch" on jobs there/,
    alreadyApplied: true,
  },
  {
    name: '422 Invalid: the fields at fault',
    fault: {
      method: 'PATCH',
      pathIncludes: '/jobs/',
      status: 422,
      reason: 'Invalid',
      message: 'Job.batch "tune-phi3" is invalid',
      details: { causes: [{ field: 'spec.template.spec.containers[0].resources.limits[nvidia.com/gpu]', message: 'Invalid value: "-1": must be greater than or equal to 0', reason: 'FieldValueInvalid' }] },
    },
    want: /refused Job tune-phi3 in namespace ml as invalid \(422\): spec\.template\.spec\.containers\[0\]\.resources\.limits\[nvidia\.com\/gpu\]: Invalid value: "-1".*Fix the field/,
    alreadyApplied: true,
  },
  {
    name: '409 Conflict: --force',
    fault: { method: 'PATCH', pathIncludes: '/configmaps/', status: 409, reason: 'Conflict', message: 'Apply failed with 1 conflict: conflict with "kubectl-client-side-apply": .data.training_config.yaml' },
    want: /conflict applying ConfigMap tune-phi3-config in namespace ml \(409 Conflict\): Apply failed with 1 conflict.*re-run with --force to take them over as field manager "headroom"/,
  },
  {
    name: '401 Unauthorized: refresh the credentials',
    fault: { pathIncludes: '/api/v1', status: 401, reason: 'Unauthorized', message: 'Unauthorized' },
    want: /the API server at http:\/\/127\.0\.0\.1:\d+ refused the credentials of context fake \(401 Unauthorized\).*Refresh them/,
  },
]

for (const c of refusals) {
  test(`an API refusal is one line with the fix: ${c.name}`, async () => {
    await withServer(
      async (api, kubeconfig) => {
        const r = await headroom(['submit', '-f', JOB, '--kubeconfig', kubeconfig])
        assert.equal(r.status, 1, r.stderr)
        assert.match(r.stderr, c.want)
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line, no stack: ${r.stderr}`)
        if (c.alreadyApplied) assert.match(r.stderr, /\(already applied: configmap\/tune-phi3-config\)/)
      },
      (api) => api.faults.push(c.fault),
    )
  })
}

test('a namespace that does not exist: create it or pick another', async () => {
  await withServer(async (_api, kubeconfig) => {
    const r = await headroom(['submit', '-f', JOB, '--kubeconfig', kubeconfig, '--namespace', 'nope'])
    assert.equal(r.status, 1)
    assert.match(r.stderr, /namespace nope does not exist on the cluster behind context fake .*kubectl create namespace nope/)
  })
})

test('an object whose namespace disagrees with --namespace is a usage error; an unreachable server is one line', async () => {
  await withServer(async (api, kubeconfig) => {
    const file = join(dir, 'ns.yaml')
    writeFileSync(file, readFileSync(JOB, 'utf8').replace('name: tune-phi3\n', 'name: tune-phi3\n  namespace: team-a\n'))
    const r = await headroom(['submit', '-f', file, '--kubeconfig', kubeconfig, '--namespace', 'ml'])
    assert.equal(r.status, 2)
    assert.match(r.stderr, /Job tune-phi3 says namespace "team-a" but --namespace is "ml"/)
    assert.equal(api.requests.filter((q) => q.method === 'PATCH').length, 0)
  })
  const api = new FakeApiServer()
  await api.start()
  const kubeconfig = api.kubeconfig(mkdtempSync(join(dir, 'k-')))
  await api.close()
  const r = await headroom(['submit', '-f', JOB, '--kubeconfig', kubeconfig])
  assert.equal(r.status, 1)
  assert.match(r.stderr, /cannot reach the API server at http:\/\/127\.0\.0\.1:\d+ \(context fake\): .*ECONNREFUSED/)
})

test('bad -f input: a missing file, no objects, and -f with render flags', () => {
  const missing = spawnSync(BIN, ['submit', '-f', join(dir, 'nope.yaml')], { encoding: 'utf8' })
  // A missing input file is a usage error (exit 2), as for check and plan --config.
  assert.equal(missing.status, 2)
  assert.match(missing.stderr, /nope\.yaml: no such file or directory: give the path of manifests written by headroom render -o FILE/)
  const empty = join(dir, 'empty.yaml')
  writeFileSync(empty, 'just: a map\n')
  const notK8s = spawnSync(BIN, ['submit', '-f', empty], { encoding: 'utf8' })
  assert.equal(notK8s.status, 1)
  assert.match(notK8s.stderr, /document 1 is not a Kubernetes object \(it needs apiVersion, kind and metadata\.name\)/)
  const both = spawnSync(BIN, ['submit', '-f', JOB, '--target', 'job'], { encoding: 'utf8' })
  assert.equal(both.status, 2)
  assert.match(both.stderr, /-f .* and render flags \(--target\) both given/)
})

test('admission: a job that does not fit is refused with the fix in ConfigMap keys; --force lets it go with a warning; under 10% headroom warns', () => {
  const GiB = 2 ** 30
  const refused = { fits: false, peakBytes: 92 * GiB, gpuMemoryBytes: 80 * GiB, headroomBytes: -12 * GiB, warnings: [], fix: ['QuantizationConfig.load_in_4bit: true', 'TrainingArguments.gradient_checkpointing: true'] }
  assert.throws(() => admit(refused, false), (e: Error & { exitCode?: number }) => {
    assert.equal(e.exitCode, 1)
    assert.match(e.message, /does not fit: predicted peak 92\.0 GiB on 80\.0 GiB .*nothing was sent.*Set QuantizationConfig\.load_in_4bit: true, TrainingArguments\.gradient_checkpointing: true/)
    return true
  })
  const forced = admit(refused, true)
  assert.equal(forced.length, 1)
  assert.match(forced[0], /--force: submitting a job that does not fit/)
  const tight = { fits: true, peakBytes: 75 * GiB, gpuMemoryBytes: 80 * GiB, headroomBytes: 5 * GiB, warnings: ['under 10% headroom: 5.0 GiB of 80.0 GiB'] }
  assert.deepEqual(admit(tight, false), tight.warnings)
})

test('apply order: namespaces, then ConfigMaps and Secrets, volumes, Services, then workloads; stable within a rank', () => {
  const kinds = ['Job', 'Service', 'ConfigMap', 'PersistentVolumeClaim', 'Workspace', 'Secret', 'ConfigMap', 'Namespace'].map((kind, i) => ({ kind, i }))
  assert.deepEqual(
    applyOrder(kinds).map((o) => `${o.kind}${o.i}`),
    ['Namespace7', 'ConfigMap2', 'Secret5', 'ConfigMap6', 'PersistentVolumeClaim3', 'Service1', 'Job0', 'Workspace4'],
  )
})

const REAL = process.env.KUBECONFIG
test(
  'against a real cluster: a server dry run of the Job is accepted',
  { skip: REAL ? false : 'KUBECONFIG is not set: no real cluster to submit to (the loopback stand-in tests above ran instead)' },
  async () => {
    const r = await headroom(['submit', '-f', JOB, '--dry-run', 'server', '--json'], { KUBECONFIG: REAL })
    assert.equal(r.status, 0, r.stderr)
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    assert.deepEqual(out.applied.map((a: { kind: string }) => a.kind), ['ConfigMap', 'Job'])
    assert.ok(out.applied.every((a: { dryRun: boolean }) => a.dryRun))
  },
)
