/** GET /healthz (open even with a token, for probes) and GET /metrics (Prometheus text). */
import { Hono } from 'hono'
import type { RunMetrics } from '../../metrics/registry.ts'

export function healthRoutes(): Hono {
  return new Hono().get('/healthz', (c) => c.json({ ok: true }))
}

export function metricsRoutes(metrics: RunMetrics): Hono {
  return new Hono().get('/metrics', async (c) => {
    const { body, contentType } = await metrics.scrape()
    return c.body(body, 200, { 'Content-Type': contentType })
  })
}
