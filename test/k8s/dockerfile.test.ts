/**
 * docker/Dockerfile, linted (no Docker engine runs here, so it is never built in tests):
 * multi-stage, base images pinned by tag, a non-root user that matches the Job's
 * securityContext, dependencies installed only from the lock files, the tiny model built in.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { RUNTIME_UID } from '../../src/k8s/job.ts'

const root = new URL('../../', import.meta.url)
const text = readFileSync(new URL('docker/Dockerfile', root), 'utf8')

/** Instructions with continuation lines joined and comments dropped. */
function instructions(src: string): { op: string; args: string }[] {
  const joined = src
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
  return joined
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const [op, ...rest] = l.split(/\s+/)
      return { op: op.toUpperCase(), args: rest.join(' ') }
    })
}

const ins = instructions(text)
const args = Object.fromEntries(ins.filter((i) => i.op === 'ARG' && i.args.includes('=')).map((i) => i.args.split('=') as [string, string]))
const froms = ins.filter((i) => i.op === 'FROM')
const finalStage = ins.slice(ins.lastIndexOf(froms[froms.length - 1]))
const runs = ins.filter((i) => i.op === 'RUN').map((i) => i.args)

describe('docker/Dockerfile', () => {
  test('is multi-stage, and every base image is pinned by an exact tag', () => {
    assert.ok(froms.length >= 3, `${froms.length} stages`)
    for (const f of froms) {
      const image = f.args.split(/\s+/)[0].replace(/^\$\{(\w+)\}$/, (_, name: string) => args[name] ?? `\${${name}}`)
      if (froms.some((g) => g !== f && g.args.endsWith(` AS ${image}`))) continue // an earlier stage
      assert.match(image, /^[\w./-]+:\d+\.\d+\.\d+[\w.-]*$/, `FROM ${f.args}: pin a version tag, not ${image}`)
      assert.doesNotMatch(image, /:latest$/)
    }
  })

  test('the final stage runs as the non-root user the Job expects', () => {
    const users = finalStage.filter((i) => i.op === 'USER')
    assert.equal(users.length, 1)
    const user = users[0].args
    assert.doesNotMatch(user, /^(root|0)(:|$)/)
    assert.equal(user, `${RUNTIME_UID}:${RUNTIME_UID}`, "docker USER and the Job's securityContext.runAsUser must agree")
    const lastRun = finalStage.map((i) => i.op).lastIndexOf('RUN')
    assert.ok(finalStage.indexOf(users[0]) > lastRun, 'USER comes after the last RUN')
  })

  test('dependencies come only from the lock files', () => {
    const copies = ins.filter((i) => i.op === 'COPY').map((i) => i.args)
    assert.ok(copies.some((c) => c.includes('package-lock.json')), 'COPY package-lock.json')
    assert.ok(copies.some((c) => c.includes('python/requirements.lock')), 'COPY python/requirements.lock')
    assert.ok(runs.some((r) => /\bnpm ci\b/.test(r)))
    assert.ok(!runs.some((r) => /\bnpm (install|i)\b/.test(r)), 'npm install ignores the lock: use npm ci')
    for (const r of runs.filter((x) => /pip install/.test(x))) {
      for (const cmd of r.split('&&').filter((c) => /pip install/.test(c))) {
        const pinned = /-r python\/requirements\.lock/.test(cmd) || /"\$TORCH_PIN"/.test(cmd)
        assert.ok(pinned, `unpinned pip install: ${cmd.trim()}`)
        assert.doesNotMatch(cmd, /pip install[^&]*\btorch(\s|$)/, 'pip install torch without a version')
      }
    }
    // TORCH_PIN is the lock's own line, so there is one torch version.
    assert.ok(runs.some((r) => r.includes(`TORCH_PIN="$(grep -E '^torch==' python/requirements.lock)"`)))
    assert.match(readFileSync(new URL('python/requirements.lock', root), 'utf8'), /^torch==\d+\.\d+\.\d+$/m)
  })

  test('the tiny default model is built into the image', () => {
    assert.ok(runs.some((r) => r.includes('python -m headroom_runtime.assets ensure')))
    assert.ok(finalStage.some((i) => i.op === 'COPY' && i.args.includes('.headroom')))
  })

  test('.dockerignore keeps local environments and run outputs out of the build context', () => {
    const ignored = readFileSync(new URL('.dockerignore', root), 'utf8').split('\n').map((l) => l.trim())
    for (const p of ['node_modules', '.venv', '.headroom', 'runs', '.git']) assert.ok(ignored.includes(p), p)
  })

  test('the lint can fail: an unpinned base, a root user and a bare pip install are caught', () => {
    const bad = instructions('FROM python:latest AS x\nRUN pip install torch\nUSER root\n')
    assert.doesNotMatch(bad[0].args.split(' ')[0], /:\d+\.\d+\.\d+/)
    assert.match(bad[1].args, /pip install[^&]*\btorch(\s|$)/)
    assert.match(bad[2].args, /^(root|0)(:|$)/)
  })
})
