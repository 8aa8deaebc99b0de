/**
 * How long a Prometheus scrape of /metrics takes with 100 runs of 10,000 samples stored.
 * A scrape must not read samples: the gauges live in memory and are rebuilt from each run's
 * newest sample once, at start-up. Prints a table and writes bench/results/metrics-scrape.json.
 *
 * Usage: node --import tsx bench/metrics-scrape.ts [--runs 100] [--samples 10000] [--scrapes 1000]
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { openDb } from '../src/store/db.ts'
import { RunStore, type Sample } from '../src/store/runs.ts'
import { startServer } from '../src/server/server.ts'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '100' }, samples: { type: 'string', default: '10000' }, scrapes: { type: 'string', default: '1000' } } })
const RUNS = Number(values.runs)
const SAMPLES = Number(values.samples)
const SCRAPES = Number(values.scrapes)
const GIB = 1024 ** 3

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]

const dir = mkdtempSync(join(tmpdir(), 'headroom-bench-'))
const dbFile = join(dir, 'bench.db')
try {
  // 1. Fill the store.
  let t = performance.now()
  const db = openDb(dbFile)
  const store = new RunStore(db)
  for (let r = 0; r < RUNS; r++) {
    const id = `bench-${String(r).padStart(3, '0')}`
    store.createRun({ id, source: 'remote' })
    store.appendEvents(id, [
      { type: 'start', t: 0, device: 'cuda', model: { name: 'phi-3-mini-128k-instruct', params: 3_821_079_552 }, method: 'qlora', totalSteps: SAMPLES, config: {}, predicted: { peakAllocatedBytes: 9 * GIB } },
    ])
    const samples: Sample[] = []
    for (let s = 1; s <= SAMPLES; s++) {
      const alloc = Math.round((6 + Math.sin(s / 50)) * GIB)
      samples.push({ step: s, t: s * 1000, allocatedBytes: alloc, reservedBytes: alloc + GIB, peakAllocatedBytes: 8 * GIB, deviceUsedBytes: alloc + 2 * GIB, loss: 1 + 1 / s, tokensPerSecond: 2000 })
    }
    store.insertSamples(id, samples)
  }
  db.close()
  const fillSeconds = (performance.now() - t) / 1000

  // 2. Start the server on it (rebuilds the gauges from the newest sample of each run).
  t = performance.now()
  const server = await startServer({ db: dbFile, port: 0 })
  const startMs = performance.now() - t

  // 3. Scrape.
  const url = `${server.url}/metrics`
  let bodyBytes = 0
  for (let i = 0; i < 50; i++) await (await fetch(url)).text() // warm-up: JIT, connection pool
  const times: number[] = []
  for (let i = 0; i < SCRAPES; i++) {
    const t0 = performance.now()
    const res = await fetch(url)
    const text = await res.text()
    times.push(performance.now() - t0)
    bodyBytes = text.length
    if (res.status !== 200 || !text.includes('headroom_memory_allocated_bytes{run="bench-099"')) throw new Error('scrape is missing runs')
  }
  await server.close()
  times.sort((a, b) => a - b)
  const result = {
    bench: 'metrics-scrape',
    date: new Date().toISOString(),
    // The load average says how much of the CPU other processes took while this ran.
    machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, node: process.version, loadAverage1m: +loadavg()[0].toFixed(2) },
    runs: RUNS,
    samplesPerRun: SAMPLES,
    storedSamples: RUNS * SAMPLES,
    dbBytes: statSync(dbFile).size,
    fillSeconds: +fillSeconds.toFixed(2),
    serverStartMs: +startMs.toFixed(1),
    scrapes: SCRAPES,
    bodyBytes,
    scrapeMs: { p50: +pct(times, 50).toFixed(3), p90: +pct(times, 90).toFixed(3), p99: +pct(times, 99).toFixed(3), max: +times.at(-1)!.toFixed(3) },
    targetP99Ms: 20,
    pass: pct(times, 99) < 20,
  }
  console.log(`/metrics scrape over HTTP, ${RUNS} runs x ${SAMPLES} samples stored (${(result.dbBytes / 2 ** 20).toFixed(0)} MiB db), ${SCRAPES} scrapes; ${result.machine.cores} cores, load average ${result.machine.loadAverage1m}`)
  console.log('| metric | value |')
  console.log('| --- | --- |')
  console.log(`| store fill | ${result.fillSeconds} s |`)
  console.log(`| server start (gauges rebuilt) | ${result.serverStartMs} ms |`)
  console.log(`| scrape body | ${(bodyBytes / 1024).toFixed(1)} KiB |`)
  for (const k of ['p50', 'p90', 'p99', 'max'] as const) console.log(`| scrape ${k} | ${result.scrapeMs[k]} ms |`)
  console.log(`| p99 < 20 ms | ${result.pass ? 'yes' : 'NO'} |`)
  mkdirSync(new URL('./results/', import.meta.url), { recursive: true })
  writeFileSync(new URL('./results/metrics-scrape.json', import.meta.url), `${JSON.stringify(result, null, 2)}\n`)
  if (!result.pass) process.exitCode = 1
} finally {
  rmSync(dir, { recursive: true, force: true })
}
