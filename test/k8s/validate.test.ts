/**
 * The offline validator: it accepts KAITO's own example Workspaces (so it is known to accept
 * the real thing), rejects what the API server would (types, required fields, unknown fields,
 * bad volume sources, bad names), and its embedded Workspace schema is the CRD's, unchanged.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { parse, parseAllDocuments } from 'yaml'
import { crdVersionSchema } from '../../src/k8s/crd-schema.ts'
import { validateManifest } from '../../src/k8s/index.ts'

const KAITO = fileURLToPath(new URL('../fixtures/kaito/', import.meta.url))
const SCHEMA_JSON = fileURLToPath(new URL('../../src/k8s/workspace-v1beta1.schema.json', import.meta.url))
const examples = readdirSync(KAITO).filter((f) => f.startsWith('kaito_workspace_'))

const exampleWorkspace = () =>
  parseAllDocuments(readFileSync(`${KAITO}kaito_workspace_tuning_phi_3.yaml`, 'utf8'))
    .map((d) => d.toJS())
    .find((o) => o.kind === 'Workspace')

describe('offline validation', () => {
  test('the embedded Workspace schema is the CRD v1beta1 openAPIV3Schema (HEADROOM_UPDATE_GOLDEN=1 regenerates it)', () => {
    const crd = parse(readFileSync(`${KAITO}crd/kaito.sh_workspaces.yaml`, 'utf8'))
    const fromCrd = crdVersionSchema(crd, 'v1beta1')
    if (process.env.HEADROOM_UPDATE_GOLDEN === '1') writeFileSync(SCHEMA_JSON, `${JSON.stringify(fromCrd, null, 2)}\n`)
    assert.deepEqual(JSON.parse(readFileSync(SCHEMA_JSON, 'utf8')), fromCrd)
  })

  test("KAITO's example fine-tuning files are all there", () => {
    assert.equal(examples.length, 4)
  })
  for (const f of examples) {
    test(`KAITO's example ${f} validates, every document`, () => {
      const docs = parseAllDocuments(readFileSync(KAITO + f, 'utf8')).map((d) => d.toJS())
      assert.ok(docs.some((d) => d.kind === 'Workspace'))
      for (const d of docs) assert.deepEqual(validateManifest(d), [], `${f}: ${d.kind}`)
    })
  }

  test('a Workspace with an unknown field, a missing required field or a bad volume source is rejected', () => {
    const typo = exampleWorkspace()
    typo.tuning.presett = typo.tuning.preset
    assert.match(validateManifest(typo).join('\n'), /Workspace\/workspace-tuning-phi-3: \/tuning must NOT have additional properties \(presett\)/)

    const noSelector = exampleWorkspace()
    delete noSelector.resource.labelSelector
    assert.match(validateManifest(noSelector).join('\n'), /\/resource must have required property 'labelSelector'/)

    const noInput = exampleWorkspace()
    delete noInput.tuning.input
    assert.match(validateManifest(noInput).join('\n'), /\/tuning must have required property 'input'/)

    const badVolume = exampleWorkspace()
    badVolume.tuning.output = { volumeSource: { persistentVolumeClaim: { claim: 'x' } } }
    assert.match(validateManifest(badVolume).join('\n'), /tuning\.output\.volumeSource: \/persistentVolumeClaim must have required property '?claimName'?/)

    const wrongType = exampleWorkspace()
    wrongType.tuning.input.urls = 'https://example.com/a.jsonl'
    assert.match(validateManifest(wrongType).join('\n'), /\/tuning\/input\/urls must be array/)
  })

  test('built-in kinds are checked against the Kubernetes OpenAPI schema', () => {
    assert.match(validateManifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { n: 1 } }).join('\n'), /ConfigMap\/c: \/data\/n must be string/)
    const job = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { template: { spec: { containers: [{ image: 'x' }], restartPolicy: 'Never' } } } }
    assert.match(validateManifest(job).join('\n'), /containers\/0 must have required property '?name'?/)
    const rule = { apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'j' }, spec: { podFailurePolicy: { rules: [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget' }] }] }, template: { spec: { containers: [{ name: 'a', image: 'x' }] } } } }
    assert.match(validateManifest(rule).join('\n'), /onPodConditions\/0 must have required property '?status'?/)
  })

  test('names and kinds the API server would refuse are named', () => {
    assert.match(validateManifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'Bad_Name' } }).join('\n'), /metadata\.name "Bad_Name" is not a DNS-1123 name/)
    assert.match(validateManifest({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ok', namespace: 'a.b' } }).join('\n'), /metadata\.namespace "a\.b" is not a DNS-1123 label/)
    assert.match(validateManifest({ apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'd' } }).join('\n'), /not one Headroom renders or validates/)
    assert.match(validateManifest('text').join('\n'), /not a Kubernetes object/)
  })
})
