/**
 * The dashboard's run view of a distributed run in a real browser (Debian's chromium through
 * playwright-core): one memory series (rank 0's steps), and each rank's peak against the
 * planner's per-rank prediction.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromiumSkip, launchChromium } from './chromium.ts'
import { startServer } from '../../src/server/server.ts'
import { twoRankEvents } from './two-rank-events.ts'


test('the run view of a 2-rank run shows the peak per rank', { skip: chromiumSkip, timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'headroom-browser-'))
  const server = await startServer({ db: join(dir, 'h.db'), port: 0, processMetrics: false })
  const browser = await launchChromium()
  const context = browser.context
  try {
    const page = context.pages()[0] ?? (await context.newPage())
    const errors: string[] = []
    page.on('pageerror', (e) => errors.push(e.message))
    const events = twoRankEvents(6, Date.now() - 60_000)
    const res = await fetch(`${server.url}/v1/runs/dist-run/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events, firstSeq: 1 }) })
    assert.equal(res.status, 200, await res.text())
    await page.goto(`${server.url}/#/runs/dist-run`)
    // Six steps from each of two ranks: one series of six points.
    await page.waitForSelector('#mem-chart[data-points="6"]', { timeout: 30_000 })
    await page.waitForSelector('#run-stats [data-stat="per-rank"]', { timeout: 30_000 })
    const perRank = (await page.textContent('#run-stats [data-stat="per-rank"] dd')) ?? ''
    // 8.9 and 9.1 GiB against the 9.5 GiB per-rank prediction of the canned run.
    assert.match(perRank, /^rank 0: 8\.90 GiB \(0\.94x .*\) · rank 1: 9\.10 GiB \(0\.96x .*\)$/)
    assert.equal(await page.$eval('#mem-chart', (e) => (e as HTMLElement).dataset.points), '6')
    assert.deepEqual(errors, [])
  } finally {
    await browser.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
