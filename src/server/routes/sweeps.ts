/**
 * Sweeps on the dashboard (issue 14): `headroom sweep` output directories under one folder
 * (server --sweeps-dir, default sweeps/). GET /v1/sweeps lists them, GET /v1/sweeps/:name is
 * its points.json, GET /sweeps/:name is a page with its table and plots, and
 * GET /sweeps/:name/:file.png a plot. Names are checked against the listing, so no request
 * path reaches another file.
 */
import { Hono } from 'hono'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ratioOf, type SweepDoc } from '../../sweep/results.ts'
import { pointKey } from '../../sweep/spec.ts'
import { formatBytes } from '../../units.ts'

const NAME = /^[A-Za-z0-9._-]{1,100}$/
const PNG = /^[A-Za-z0-9._-]{1,100}\.png$/

function readDoc(dir: string, name: string): SweepDoc | null {
  if (!NAME.test(name) || name.startsWith('.')) return null
  const path = join(dir, name, 'points.json')
  try {
    if (!statSync(path).isFile() || statSync(path).size > 64 * 1024 * 1024) return null
    const doc = JSON.parse(readFileSync(path, 'utf8')) as SweepDoc
    return Array.isArray(doc.points) ? doc : null
  } catch {
    return null
  }
}

function listSweeps(dir: string): { name: string; points: number; device: string; updatedAt: string }[] {
  if (!existsSync(dir)) return []
  return readdirSync(dir)
    .flatMap((name) => {
      const doc = readDoc(dir, name)
      return doc ? [{ name, points: doc.points.length, device: doc.device, updatedAt: doc.updatedAt }] : []
    })
    .sort((a, b) => a.name.localeCompare(b.name))
}

function plotsOf(dir: string, name: string): string[] {
  try {
    return readdirSync(join(dir, name)).filter((f) => PNG.test(f)).sort()
  } catch {
    return []
  }
}

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const val = (v: unknown) => (Array.isArray(v) ? v.join('+') : v === undefined ? '' : String(v))

/** The sweep's page: server-rendered (the CSP allows no inline script), table and plots. */
function page(name: string, doc: SweepDoc, plots: string[]): string {
  const grid = doc.grid
  const rows = doc.points
    .map((p) => {
      const r = ratioOf(p)
      return `<tr data-point="${p.index}"><td>${p.index}</td>${grid.map((g) => `<td>${esc(val((p.fields as Record<string, unknown>)[g]))}</td>`).join('')}<td>${esc(p.state)}</td><td>${p.predictedPeakBytes !== null ? esc(formatBytes(p.predictedPeakBytes)) : 'n/a'}</td><td>${p.measuredPeakBytes !== null ? esc(formatBytes(p.measuredPeakBytes)) : 'n/a'}</td><td>${r !== null ? `${r.toFixed(2)}x` : 'n/a'}</td><td>${p.tokensPerSecond !== null ? p.tokensPerSecond.toFixed(0) : 'n/a'}</td></tr>`
    })
    .join('\n')
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sweep ${esc(name)} · Headroom</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main>
<p><a href="/">Headroom</a> · <a href="/sweeps">sweeps</a></p>
<h1>Sweep ${esc(name)}</h1>
<p>${esc(doc.spec.description ?? '')} Device: ${esc(doc.device)}${doc.gpu ? ` (${esc(doc.gpu.name)})` : ''}; ${doc.points.length} points over ${esc(grid.join(' × '))}.</p>
<table id="sweep-points"><thead><tr><th>#</th>${grid.map((g) => `<th>${esc(g)}</th>`).join('')}<th>state</th><th>predicted</th><th>measured</th><th>measured/predicted</th><th>tokens/s</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<section id="sweep-plots">${plots.map((f) => `<figure><img src="/sweeps/${esc(name)}/${esc(f)}" alt="${esc(f)}"><figcaption>${esc(f)}</figcaption></figure>`).join('\n')}</section>
</main></body></html>
`
}

function indexPage(items: ReturnType<typeof listSweeps>): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sweeps · Headroom</title><link rel="stylesheet" href="/static/style.css"></head>
<body><main><p><a href="/">Headroom</a></p><h1>Sweeps</h1>
<ul id="sweeps">${items.map((s) => `<li><a href="/sweeps/${esc(s.name)}">${esc(s.name)}</a>: ${s.points} points on ${esc(s.device)}</li>`).join('\n')}</ul>
${items.length ? '' : '<p>No sweeps yet: run <code>headroom sweep examples/sweeps/seed-batch.yaml</code>.</p>'}
</main></body></html>
`
}

export function sweepRoutes(sweepsDir: string): Hono {
  const dir = resolve(sweepsDir)
  const app = new Hono()
  const notFound = (what: string) => ({ issues: [{ code: 'not_found', path: 'name', message: `no sweep ${JSON.stringify(what)} under ${sweepsDir} (GET /v1/sweeps lists them)` }] })
  app.get('/v1/sweeps', (c) => c.json({ sweeps: listSweeps(dir) }))
  app.get('/v1/sweeps/:name', (c) => {
    const doc = readDoc(dir, c.req.param('name'))
    return doc ? c.json(doc) : c.json(notFound(c.req.param('name')), 404)
  })
  app.get('/sweeps', (c) => c.html(indexPage(listSweeps(dir))))
  app.get('/sweeps/:name', (c) => {
    const name = c.req.param('name')
    const doc = readDoc(dir, name)
    return doc ? c.html(page(name, doc, plotsOf(dir, name))) : c.json(notFound(name), 404)
  })
  app.get('/sweeps/:name/:file', (c) => {
    const { name, file } = c.req.param()
    if (!readDoc(dir, name) || !plotsOf(dir, name).includes(file)) return c.json(notFound(`${name}/${file}`), 404)
    return c.body(new Uint8Array(readFileSync(join(dir, name, file))), 200, { 'Content-Type': 'image/png', 'Cache-Control': 'no-cache' })
  })
  return app
}
