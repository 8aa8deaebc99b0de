/**
 * A sweep on the dashboard, in a real browser (Debian's chromium through playwright-core):
 * the server lists the sweeps under --sweeps-dir, the sweep's page has one table row per
 * point, and its plot (drawn by the real sweep_plots.py) loads as an image.
 */
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { chromiumSkip, launchChromium } from '../server/chromium.ts'
import { startServer } from '../../src/server/server.ts'
import type { PointResult, SweepDoc } from '../../src/sweep/results.ts'
import { ROOT } from './helpers.ts'


function point(index: number, rank: number, measured: number): PointResult {
  return { index, key: `rank=${rank}`, fields: { rank }, varied: { rank }, state: 'succeeded', predictedPeakBytes: measured * 1.02, predictedState: null, measuredPeakBytes: measured, measuredReservedBytes: null, measuredDeviceUsedBytes: null, tokensPerSecond: 100 + index, trainedSeq: 64, steps: 2, seconds: 1, device: 'cpu', runDir: `runs/00${index}` }
}

test('the dashboard lists a sweep and shows its table and plot', { skip: chromiumSkip, timeout: 120_000 }, async () => {
  const sweeps = mkdtempSync(join(tmpdir(), 'headroom-sweeps-'))
  const dir = join(sweeps, 'ranks')
  mkdirSync(dir)
  const doc: SweepDoc = { version: 1, spec: { name: 'ranks', description: 'three ranks', base: {}, grid: { rank: [2, 8, 32] } }, baseKey: '{}', device: 'cpu', gpu: null, grid: ['rank'], points: [point(0, 2, 20e6), point(1, 8, 21e6), point(2, 32, 25e6)], updatedAt: '' }
  writeFileSync(join(dir, 'points.json'), JSON.stringify(doc))
  // The real plotting script, as `headroom sweep` runs it.
  execFileSync(join(ROOT, '.venv', 'bin', 'python'), ['-m', 'headroom_runtime.sweep_plots', '--dir', dir], { env: { ...process.env, PYTHONPATH: join(ROOT, 'python') } })
  assert.ok(existsSync(join(dir, 'memory-vs-rank.png')))

  const server = await startServer({ db: ':memory:', port: 0, processMetrics: false, sweepsDir: sweeps })
  const browser = await launchChromium()
  const context = browser.context
  try {
    const list = (await (await fetch(`${server.url}/v1/sweeps`)).json()) as { sweeps: { name: string; points: number }[] }
    assert.deepEqual(list.sweeps.map((s) => [s.name, s.points]), [['ranks', 3]])
    // No path outside the listing: a traversal or an unlisted file is 404.
    assert.equal((await fetch(`${server.url}/sweeps/ranks/..%2Fpoints.json`)).status, 404)
    assert.equal((await fetch(`${server.url}/sweeps/ranks/points.json`)).status, 404)

    const page = context.pages()[0] ?? (await context.newPage())
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    await page.goto(`${server.url}/sweeps`)
    await page.click('#sweeps a')
    await page.waitForSelector('#sweep-points tbody tr')
    const rows = await page.$$eval('#sweep-points tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)))
    assert.deepEqual(rows.map((r) => r.slice(0, 3)), [['0', '2', 'succeeded'], ['1', '8', 'succeeded'], ['2', '32', 'succeeded']])
    assert.equal(rows[2][4], '23.8 MiB')
    const img = await page.waitForFunction(() => {
      const i = document.querySelector('#sweep-plots img') as HTMLImageElement | null
      return i && i.complete && i.naturalWidth > 0 ? { w: i.naturalWidth, src: i.getAttribute('src') } : null
    })
    const loaded = (await img.jsonValue()) as { w: number; src: string }
    assert.equal(loaded.src, '/sweeps/ranks/memory-vs-rank.png')
    assert.ok(loaded.w > 300)
    assert.deepEqual(errors, [])
  } finally {
    await browser.close()
    await server.close()
  }
})
