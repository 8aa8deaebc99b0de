/**
 * The Job's container against the real Python runtime, on this machine (no cluster): the
 * mounted training_config.yaml loads in the trainer's own config loader, and the container
 * script resumes exactly when the output volume holds a complete checkpoint (the trainer's
 * _checkpoint.find decides, with its real code).
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { renderManifests } from '../../src/k8s/index.ts'
import { GOLDEN_CASES } from './cases.ts'

const root = fileURLToPath(new URL('../../', import.meta.url))
const venvBin = join(root, '.venv/bin')
const skip = !existsSync(join(venvBin, 'python')) && 'no .venv (bash scripts/setup.sh creates it)'
const tmp = mkdtempSync(join(tmpdir(), 'headroom-container-'))
after(() => rmSync(tmp, { recursive: true, force: true }))

type Obj = Record<string, any>

describe('the Job container with the real runtime', { skip }, () => {
  for (const [file, opts] of Object.entries(GOLDEN_CASES).filter(([, o]) => o.target === 'job')) {
    test(`${file}: the trainer's config loader accepts the mounted training_config.yaml`, () => {
      const cm = renderManifests(opts).objects.find((o) => o.kind === 'ConfigMap') as Obj
      const path = join(tmp, `${file}.training_config.yaml`)
      writeFileSync(path, cm.data['training_config.yaml'])
      const r = spawnSync(join(venvBin, 'python'), ['-c', 'import sys; from headroom_runtime.config import load_config; c = load_config(sys.argv[1]); print(c.train["output_dir"])', path], {
        cwd: join(root, 'python'),
        encoding: 'utf8',
      })
      assert.equal(r.status, 0, r.stderr)
      assert.equal(r.stdout.trim(), '/mnt/output')
    })
  }

  test('the script resumes from the output volume only when a complete checkpoint is there', () => {
    const job = renderManifests({ target: 'job' }).objects.find((o) => o.kind === 'Job') as Obj
    const script = job.spec.template.spec.containers[0].command[2] as string
    const run = (out: string) => {
      // The real probe and launcher line, pointed at a local directory; `exec` prints instead of training.
      const local = script.replaceAll('/mnt/output', out).replace(/^exec /m, 'echo ')
      const r = spawnSync('/bin/sh', ['-c', local], { encoding: 'utf8', env: { ...process.env, PATH: `${venvBin}:${process.env.PATH}`, PYTHONPATH: join(root, 'python') } })
      assert.equal(r.status, 0, r.stderr)
      return r.stdout
    }
    const out = join(tmp, 'output')
    mkdirSync(out)
    assert.doesNotMatch(run(out), /--resume-from/, 'an empty volume starts fresh')
    const ckpt = join(out, 'checkpoint-10')
    mkdirSync(ckpt)
    for (const f of ['trainer_state.json', 'scheduler.pt', 'rng_state.pt', 'adapter_model.safetensors']) writeFileSync(join(ckpt, f), '')
    assert.doesNotMatch(run(out), /--resume-from/, 'a checkpoint cut short (no optimizer.pt) is not resumed from')
    writeFileSync(join(ckpt, 'optimizer.pt'), '')
    assert.match(run(out), new RegExp(`-m headroom_runtime\\.train .* --resume-from ${out}$`, 'm'))
  })
})
