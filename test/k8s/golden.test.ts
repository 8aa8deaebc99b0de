/**
 * Golden manifests: each case renders byte for byte as committed under test/k8s/golden/, and
 * every object in every golden file is valid offline: built-in kinds under kubernetes-models
 * (here) and `kubernetes-validate --strict` (an independent validator, over the files), the
 * Workspaces under the CRD schema with ajv (here) and Python's jsonschema (independently).
 * HEADROOM_UPDATE_GOLDEN=1 rewrites the files from the current renderer (review the diff).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { parseAllDocuments } from 'yaml'
import { renderManifests, validateManifest } from '../../src/k8s/index.ts'
import { FIXTURES, GOLDEN_CASES, GOLDEN_DIR } from './cases.ts'

const UPDATE = process.env.HEADROOM_UPDATE_GOLDEN === '1'
const PY = new URL('../../.venv/bin/python', import.meta.url).pathname
const KV = new URL('../../.venv/bin/kubernetes-validate', import.meta.url).pathname
const files = Object.keys(GOLDEN_CASES).map((f) => GOLDEN_DIR + f)

function docs(path: string): Record<string, unknown>[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as Record<string, unknown>)
}

describe('golden manifests', () => {
  for (const [file, opts] of Object.entries(GOLDEN_CASES)) {
    test(`${file} renders as committed`, () => {
      const { yaml, objects } = renderManifests(opts)
      if (UPDATE) writeFileSync(GOLDEN_DIR + file, yaml)
      assert.equal(yaml, readFileSync(GOLDEN_DIR + file, 'utf8'), `${file} changed: review it and rerun with HEADROOM_UPDATE_GOLDEN=1`)
      // The YAML is the objects: nothing lost in printing.
      assert.deepEqual(docs(GOLDEN_DIR + file), JSON.parse(JSON.stringify(objects)))
    })
  }

  test('every object in every golden file is valid under kubernetes-models / the CRD with ajv', () => {
    let n = 0
    for (const f of files) {
      for (const o of docs(f)) {
        assert.deepEqual(validateManifest(o), [], `${f}: ${o.kind}`)
        n++
      }
    }
    assert.equal(n, 12, `${n} objects`)
  })

  test('every built-in object passes kubernetes-validate --strict', { skip: !existsSync(KV) && 'no .venv/bin/kubernetes-validate (bash scripts/setup.sh installs it)' }, () => {
    const r = spawnSync(KV, ['--strict', ...files], { encoding: 'utf8' })
    const out = `${r.stdout}${r.stderr}`
    const builtIn = files.flatMap((f) => docs(f).filter((o) => o.apiVersion !== 'kaito.sh/v1beta1').map((o) => `${f} passed for resource ${String(o.kind).toLowerCase()}/${(o.metadata as { name: string }).name}`))
    for (const line of builtIn) assert.ok(out.includes(line), `kubernetes-validate did not pass: ${line}\n${out}`)
    assert.doesNotMatch(out, /ERROR|failed/i, out)
    // It knows no KAITO CRD: the Workspaces are only warned about (the next test covers them).
    const workspaces = files.flatMap((f) => docs(f).filter((o) => o.kind === 'Workspace'))
    assert.equal((out.match(/Couldn't find schema for kind Workspace/g) ?? []).length, workspaces.length)
  })

  test('kubernetes-validate --strict rejects an unknown field (the cross-check can fail)', { skip: !existsSync(KV) && 'no kubernetes-validate' }, () => {
    const bad = readFileSync(GOLDEN_DIR + 'job-single.yaml', 'utf8').replace('restartPolicy: Never', 'restartPolicy: Never\n          restartPolicyy: Never')
    const path = `${process.env.TMPDIR ?? '/tmp'}/headroom-bad-job-${process.pid}.yaml`
    writeFileSync(path, bad)
    const r = spawnSync(KV, ['--strict', path], { encoding: 'utf8' })
    assert.notEqual(r.status, 0)
    assert.match(`${r.stdout}${r.stderr}`, /restartPolicyy/)
  })

  test('every Workspace validates against the CRD under Python jsonschema too', { skip: !existsSync(PY) && 'no .venv/bin/python' }, () => {
    // Independent of validate.ts: the CRD read by PyYAML, made strict in Python, checked by jsonschema.
    const script = `
import json, sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
schema = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")["schema"]["openAPIV3Schema"]
def strict(s):
    if isinstance(s, dict):
        s = {k: (v if k == "description" else strict(v)) for k, v in s.items()}
        if s.get("type") == "object" and "properties" in s and "additionalProperties" not in s and not s.get("x-kubernetes-preserve-unknown-fields"):
            s["additionalProperties"] = False
    elif isinstance(s, list):
        s = [strict(x) for x in s]
    return s
v = jsonschema.Draft7Validator(strict(schema))
bad = 0
for path in sys.argv[2:]:
    for doc in yaml.safe_load_all(open(path)):
        if doc and doc.get("kind") == "Workspace":
            errs = list(v.iter_errors(doc))
            bad += len(errs)
            print(path, doc["metadata"]["name"], "ok" if not errs else [e.message for e in errs])
sys.exit(1 if bad else 0)
`
    const wsFiles = files.filter((f) => docs(f).some((o) => o.kind === 'Workspace'))
    const r = spawnSync(PY, ['-c', script, `${FIXTURES}kaito/crd/kaito.sh_workspaces.yaml`, ...wsFiles], { encoding: 'utf8' })
    assert.equal(r.status, 0, `${r.stdout}${r.stderr}`)
    assert.equal((r.stdout.match(/ ok$/gm) ?? []).length, wsFiles.length, r.stdout)
  })
})
