/**
 * `headroom submit <render flags>`: the renderer (src/k8s/index.ts renderManifests, with its
 * admission) in front of server-side apply, against the loopback API server stand-in. The
 * seed's LoRA setting for Phi-3-mini on Standard_NC24ads_A100_v4 is refused before anything is
 * sent; the QLoRA version is applied exactly as `headroom render` prints it; --force sends the
 * refused one with a warning. Skipped (saying why) in a tree without the renderer.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { FakeApiServer } from './fake-apiserver.ts'
import { BIN, headroom } from './cli.ts'
import { applyOrder } from '../../src/k8s/submit.ts'

const ROOT = join(import.meta.dirname, '../..')
const LORA = join(ROOT, 'test/fixtures/k8s/seed-lora.yaml')
const QLORA = join(ROOT, 'test/fixtures/k8s/seed-qlora.yaml')
const SKU = 'Standard_NC24ads_A100_v4'

test(
  'submit from render flags: the seed LoRA refused with nothing sent, the QLoRA applied as rendered, --force sends the refused one',
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'headroom-submit-render-'))
    const api = new FakeApiServer()
    await api.start()
    try {
      const kubeconfig = api.kubeconfig(dir)
      const refused = await headroom(['submit', '--target', 'job', '--config', LORA, '--gpu', SKU, '--kubeconfig', kubeconfig])
      assert.equal(refused.status, 1, refused.stderr)
      assert.match(refused.stderr, /does not fit .*TrainingArguments\.gradient_checkpointing: true/)
      assert.equal(api.requests.length, 0, 'a job that does not fit never reaches the API server')

      const ok = await headroom(['submit', '--target', 'job', '--config', QLORA, '--gpu', SKU, '--kubeconfig', kubeconfig, '--namespace', 'ml'])
      assert.equal(ok.status, 0, ok.stderr)
      const rendered = spawnSync(BIN, ['render', '--target', 'job', '--config', QLORA, '--gpu', SKU, '--namespace', 'ml'], { encoding: 'utf8' })
      assert.equal(rendered.status, 0, rendered.stderr)
      const objects = parseAllDocuments(rendered.stdout).map((d) => d.toJS()).filter(Boolean)
      const patches = api.requests.filter((q) => q.method === 'PATCH')
      assert.equal(patches[0].path.split('/').at(-2), 'configmaps', 'the ConfigMap goes first')
      // The bodies are what `headroom render` prints, in apply order: nothing altered or dropped.
      assert.deepEqual(patches.map((p) => p.body), applyOrder(objects))
      for (const p of patches) assert.equal(p.query.get('fieldManager'), 'headroom')

      const before = api.requests.length
      const forced = await headroom(['submit', '--target', 'job', '--config', LORA, '--gpu', SKU, '--kubeconfig', kubeconfig, '--force', '--dry-run', 'server'])
      assert.equal(forced.status, 0, forced.stderr)
      assert.match(forced.stderr, /warning: --force/)
      assert.equal(forced.stderr.match(/warning: --force/g)?.length, 1, 'one --force warning')
      const sent = api.requests.slice(before).filter((q) => q.method === 'PATCH')
      assert.ok(sent.length >= 2 && sent.every((q) => q.query.get('dryRun') === 'All' && q.query.get('force') === 'true'))
    } finally {
      await api.close()
      rmSync(dir, { recursive: true, force: true })
    }
  },
)
