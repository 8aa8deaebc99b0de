/**
 * The dashboard in a real browser (Debian's chromium through playwright-core): the plan
 * explorer draws the breakdown bar and the memory-vs-sequence curve for
 * phi-3-mini-128k-instruct on A100-80GB, and the run view draws a memory line. Screenshots
 * go to test-artifacts/ (not committed).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from 'playwright-core'
import { chromiumSkip, launchChromium } from './chromium.ts'
import { startServer } from '../../src/server/server.ts'
import { cannedEvents } from './helpers.ts'
import { e2eSkipReason } from '../runtime/helpers.ts'

const ARTIFACTS = join(import.meta.dirname, '../../test-artifacts')

/** Counts canvas pixels within `tolerance` of an RGB colour (uPlot anti-aliases its lines). */
async function pixelsNear(page: Page, selector: string, hex: string, tolerance = 40): Promise<number> {
  return page.$eval(
    selector,
    (canvas, [hex, tolerance]) => {
      const c = canvas as HTMLCanvasElement
      const [r, g, b] = [1, 3, 5].map((i) => parseInt((hex as string).slice(i, i + 2), 16))
      const data = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data
      let n = 0
      for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 200 && Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < (tolerance as number)) n++
      }
      return n
    },
    [hex, tolerance] as const,
  )
}

test('the dashboard draws the plan explorer and a live run', { skip: chromiumSkip, timeout: 120_000 }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'headroom-browser-'))
  const server = await startServer({ db: join(dir, 'h.db'), port: 0, processMetrics: false })
  const browser = await launchChromium({ width: 1280, height: 1000 })
  const context = browser.context
  try {
    const page = context.pages()[0] ?? (await context.newPage())
    const consoleErrors: string[] = []
    page.on('console', (m) => m.type() === 'error' && consoleErrors.push(m.text()))
    page.on('pageerror', (e) => consoleErrors.push(e.message))

    // Plan explorer, on the seed's case.
    await page.goto(`${server.url}/#/plan?model=phi-3-mini-128k-instruct&gpu=A100-80GB&method=qlora&batch=1&seq=2048&rank=8`)
    await page.waitForSelector('body[data-plan-drawn]', { timeout: 60_000 })
    assert.equal(await page.$eval('#f-model', (s) => (s as HTMLSelectElement).value), 'phi-3-mini-128k-instruct')
    assert.equal(await page.$eval('#f-gpu', (s) => (s as HTMLSelectElement).value), 'A100-80GB')
    const segments = await page.$$eval('#breakdown svg rect[data-component]', (rects) => rects.map((r) => ({ c: r.getAttribute('data-component'), w: Number(r.getAttribute('width')) })))
    assert.ok(segments.length >= 4, `breakdown segments: ${JSON.stringify(segments)}`)
    assert.ok(segments.every((s) => s.w > 0))
    assert.ok(segments.some((s) => s.c === 'weights') && segments.some((s) => s.c === 'activations'))
    assert.match(await page.textContent('#plan-summary') ?? '', /GiB peak on A100-80GB/)
    assert.ok((await page.$$('#breakdown-legend li')).length === segments.length, 'a legend entry per segment')
    const curve = '#curve canvas'
    assert.ok((await pixelsNear(page, curve, '#3b5bdb')) > 200, 'the LoRA curve is drawn')
    assert.ok((await pixelsNear(page, curve, '#12b886')) > 200, 'the QLoRA curve is drawn')
    assert.ok((await pixelsNear(page, curve, '#c92a2a')) > 100, 'the GPU memory line is drawn')
    // uPlot paints axis labels on the canvas; the legend is DOM.
    const legend = await page.$$eval('#curve .u-legend .u-label', (els) => els.map((e) => e.textContent))
    assert.deepEqual(legend, ['Sequence length (tokens)', 'LoRA', 'QLoRA', 'A100-80GB memory'])
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-plan.png'), fullPage: true })

    // The form is built from the plan-field table, and a field set in it reaches the plan:
    // LoRA with and without checkpointing shows the peak POST /v1/plans gives for each.
    const { fields } = (await (await fetch(`${server.url}/v1/plan-fields`)).json()) as { fields: { name: string; form?: unknown }[] }
    for (const f of fields.filter((x) => x.form)) assert.ok(await page.$(`#f-${f.name}`), `a form control for ${f.name}`)
    assert.ok(await page.$('#f-gradientCheckpointing'))
    for (const gc of [true, false]) {
      const drawn = await page.$eval('body', (b) => b.dataset.planDrawn)
      await page.selectOption('#f-method', 'lora')
      await page.selectOption('#f-gradientCheckpointing', String(gc))
      await page.waitForFunction((before) => document.body.dataset.planDrawn !== before, drawn, { timeout: 60_000 })
      const api = (await (await fetch(`${server.url}/v1/plans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'phi-3-mini-128k-instruct', gpu: 'A100-80GB', method: 'lora', dtype: 'bf16', batch: 1, seq: 2048, rank: 8, gradientCheckpointing: gc, attention: 'sdpa', optimizer: 'adamw' }) })).json()) as { peakBytes: number }
      assert.match(await page.textContent('#plan-summary') ?? '', new RegExp(`^${(api.peakBytes / 1024 ** 3).toFixed(1)} GiB peak`), `checkpointing ${gc}`)
    }

    // The levers (issue 13) are switches from the same table: on QLoRA at 65,536 tokens the chunked loss and the
    // offloaded checkpoint each lower the peak the page shows, to what POST /v1/plans gives; packing changes nothing.
    for (const name of ['loss', 'offloadActivations', 'packing']) {
      const options = await page.$$eval(`#f-${name} option`, (os) => os.map((o) => (o as HTMLOptionElement).value))
      assert.deepEqual(options, name === 'loss' ? ['full', 'chunked'] : ['true', 'false'], name)
    }
    const leverBase = { model: 'phi-3-mini-128k-instruct', gpu: 'A100-80GB', method: 'qlora', dtype: 'bf16', batch: 1, seq: 65536, rank: 8, gradientCheckpointing: true, attention: 'sdpa', optimizer: 'adamw' }
    const shown = async (levers: { loss: string; offloadActivations: boolean; packing: boolean }) => {
      const api = (await (await fetch(`${server.url}/v1/plans`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...leverBase, ...levers }) })).json()) as { peakBytes: number }
      const expected = `${(api.peakBytes / 1024 ** 3).toFixed(1)} GiB peak`
      await page.selectOption('#f-loss', levers.loss)
      await page.selectOption('#f-offloadActivations', String(levers.offloadActivations))
      await page.selectOption('#f-packing', String(levers.packing))
      await page.waitForFunction((e) => (document.querySelector('#plan-summary')?.textContent ?? '').startsWith(e), expected, { timeout: 60_000 })
      return api.peakBytes
    }
    await page.selectOption('#f-method', 'qlora')
    await page.selectOption('#f-gradientCheckpointing', 'true')
    await page.fill('#f-seq', '65536')
    const none = await shown({ loss: 'full', offloadActivations: false, packing: false })
    const chunked = await shown({ loss: 'chunked', offloadActivations: false, packing: false })
    const both = await shown({ loss: 'chunked', offloadActivations: true, packing: false })
    const drawnBefore = await page.$eval('body', (b) => b.dataset.planDrawn)
    const packed = await shown({ loss: 'chunked', offloadActivations: true, packing: true })
    // The curve is drawn after the summary: let it finish before the screenshot.
    await page.waitForFunction((before) => document.body.dataset.planDrawn !== before, drawnBefore, { timeout: 60_000 })
    assert.ok(chunked < none && both < chunked, `${none} > ${chunked} > ${both}`)
    assert.equal(packed, both, 'packing claims no memory')
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-levers.png'), fullPage: true })

    // A run reported with canned events: the runs list, then the run view, which keeps
    // drawing as more events arrive over SSE.
    const events = cannedEvents(40, Date.now() - 60_000)
    const report = async (batch: typeof events, firstSeq: number) => {
      const res = await fetch(`${server.url}/v1/runs/browser-run/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ events: batch, firstSeq }) })
      assert.equal(res.status, 200, await res.text())
    }
    await report(events.slice(0, 11), 1)
    await page.goto(`${server.url}/#/runs`)
    await page.waitForSelector('tr[data-id="browser-run"]')
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-runs.png'), fullPage: true })
    await page.click('tr[data-id="browser-run"] a')
    await page.waitForSelector('#mem-chart[data-points="10"]', { timeout: 30_000 })
    await report(events.slice(11), 12)
    await page.waitForSelector('#mem-chart[data-points="40"]', { timeout: 30_000 })
    await page.waitForFunction(() => document.querySelector('#run-state')?.textContent === 'succeeded', undefined, { timeout: 30_000 })
    await page.waitForTimeout(100)
    const mem = '#mem-chart canvas'
    assert.ok((await pixelsNear(page, mem, '#3b5bdb')) > 200, 'the allocated-memory line is drawn')
    assert.ok((await pixelsNear(page, mem, '#e8590c')) > 100, 'the predicted peak line is drawn')
    assert.ok((await pixelsNear(page, '#loss-chart canvas', '#e64980')) > 100, 'the loss line is drawn')
    assert.match((await page.textContent('#run-state')) ?? '', /succeeded/)
    // The start event's weights: random ones are named, with what they mean for the loss.
    await page.waitForSelector('#run-stats [data-stat="weights"]', { timeout: 30_000 })
    assert.equal(await page.textContent('#run-stats [data-stat="weights"] dd'), 'random, built from phi-3-mini-128k-instruct (--weights random): the loss means nothing')
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-run.png'), fullPage: true })
    // A run this server started whose worst case exceeded the device: the planner's pre-flight warning, as the hub stored it.
    const warning = 'the worst case at max_length may not fit (batches padded that long would run out of memory): at 131,072 tokens × batch 8 this needs 10841.3 GiB, this machine has 23.5 GiB: set TrainingArguments.max_length to 5,504'
    assert.ok(server.store.createRun({ id: 'warned-run', source: 'local', warning }))
    await page.goto(`${server.url}/#/runs/warned-run`)
    await page.waitForSelector('#run-stats [data-stat="warning"]', { timeout: 30_000 })
    assert.equal(await page.textContent('#run-stats [data-stat="warning"] dd'), warning)
    assert.deepEqual(consoleErrors, [])
  } finally {
    await browser.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})

test('the run view of a default run started through the API shows predicted vs measured as the terminal does', { skip: chromiumSkip || e2eSkipReason(), timeout: 300_000 }, async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  const dir = mkdtempSync(join(tmpdir(), 'headroom-browser-'))
  const server = await startServer({ db: join(dir, 'h.db'), port: 0, runsDir: join(dir, 'runs'), processMetrics: false })
  const browser = await launchChromium({ width: 1280, height: 1000 })
  const context = browser.context
  try {
    const res = await fetch(`${server.url}/v1/runs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ maxSteps: 3, device: 'cpu' }) })
    const created = (await res.json()) as { id: string }
    assert.equal(res.status, 201, JSON.stringify(created))
    const page = context.pages()[0] ?? (await context.newPage())
    const consoleErrors: string[] = []
    page.on('pageerror', (e) => consoleErrors.push(e.message))
    await page.goto(`${server.url}/#/runs/${created.id}`)
    await page.waitForFunction(() => document.querySelector('#run-state')?.textContent === 'succeeded', undefined, { timeout: 240_000 })
    await page.waitForSelector('#mem-chart[data-points="3"]', { timeout: 30_000 })
    const stat = async (key: string) => (await page.textContent(`#run-stats [data-stat="${key}"] dd`)) ?? ''
    await page.waitForFunction(() => /x \(/.test(document.querySelector('#run-stats [data-stat="ratio"] dd')?.textContent ?? ''), undefined, { timeout: 30_000 })
    const rendered = await stat('ratio')
    const ratio = Number(/^(\d+\.\d\d)x/.exec(rendered)?.[1])
    assert.ok(ratio >= 0.9 && ratio <= 1.1, `the run view says measured/predicted ${rendered}`)
    // The figure the page renders is the terminal's: measured over the prediction at the longest batch.
    const run = (await (await fetch(`${server.url}/v1/runs/${created.id}`)).json()) as { predictedPeakBytes: number; predictedMaxLengthPeakBytes: number; measuredPeakBytes: number; summary: { tokensPerSecond: number } }
    assert.equal(rendered.split(' ')[0], `${(run.measuredPeakBytes / run.predictedPeakBytes).toFixed(2)}x`)
    // The summary's throughput, as the terminal prints it.
    assert.ok(run.summary.tokensPerSecond > 0)
    assert.equal(await stat('throughput'), `${Math.round(run.summary.tokensPerSecond).toLocaleString('en-US')} tok/s`)
    assert.match(await stat('max-length'), /GiB/)
    assert.equal(await stat('weights'), 'pretrained')
    assert.notEqual(await stat('max-length'), await stat('predicted'), 'the max_length worst case is shown beside, not instead')
    assert.ok((await pixelsNear(page, '#mem-chart canvas', '#e8590c')) > 50, 'the predicted peak line is drawn')
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-default-run.png'), fullPage: true })
    assert.deepEqual(consoleErrors, [])
  } finally {
    await browser.close()
    await server.close()
    rmSync(dir, { recursive: true, force: true })
  }
})
