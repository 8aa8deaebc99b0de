/**
 * The dashboard: a fixed table of files, read once. Only these names are served, so no
 * request path can reach any other file. uPlot comes straight from its npm package.
 */
import { Hono } from 'hono'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const here = dirname(fileURLToPath(import.meta.url))
const uplotDir = dirname(createRequire(import.meta.url).resolve('uplot'))

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: join(here, '../static/index.html'), type: 'text/html; charset=utf-8' },
  '/static/app.js': { file: join(here, '../static/app.js'), type: 'text/javascript; charset=utf-8' },
  '/static/charts.js': { file: join(here, '../static/charts.js'), type: 'text/javascript; charset=utf-8' },
  '/static/style.css': { file: join(here, '../static/style.css'), type: 'text/css; charset=utf-8' },
  '/static/uplot.js': { file: join(uplotDir, 'uPlot.esm.js'), type: 'text/javascript; charset=utf-8' },
  '/static/uplot.css': { file: join(uplotDir, 'uPlot.min.css'), type: 'text/css; charset=utf-8' },
}

export function staticRoutes(): Hono {
  const cache = new Map<string, Buffer>()
  const app = new Hono()
  for (const [path, { file, type }] of Object.entries(FILES)) {
    app.get(path, (c) => {
      let body = cache.get(path)
      if (!body) cache.set(path, (body = readFileSync(file)))
      return c.body(new Uint8Array(body), 200, { 'Content-Type': type, 'Cache-Control': 'no-cache' })
    })
  }
  return app
}
