/**
 * The Hono application: JSON API, server-sent events, /metrics and the dashboard. Pure
 * wiring; the store, the metrics and the library functions come in as dependencies, so
 * tests drive it with `app.request()` and no sockets.
 */
import { Hono } from 'hono'
import { secureHeaders } from 'hono/secure-headers'
import type { RunMetrics } from '../metrics/registry.ts'
import type { RunStore } from '../store/runs.ts'
import { bearerAuth } from './auth.ts'
import { limitBody } from './body.ts'
import { fromLibraryError } from './http-error.ts'
import type { RunHub } from './hub.ts'
import { catalogRoutes } from './routes/catalog.ts'
import { healthRoutes, metricsRoutes } from './routes/health.ts'
import { planRoutes } from './routes/plans.ts'
import { pathPolicy, type PathPolicy } from './path-policy.ts'
import { runRoutes } from './routes/runs.ts'
import { staticRoutes } from './routes/static.ts'
import { sweepRoutes } from './routes/sweeps.ts'
import type { Services } from './services.ts'

/** 1 MiB: a tuning config is a few KiB; a batch of 1,000 step events is about 400 KiB. */
export const DEFAULT_BODY_LIMIT_BYTES = 1024 * 1024

export type AppDeps = {
  store: RunStore
  metrics: RunMetrics
  hub: RunHub
  services: Services
  /** When set, every route but /healthz needs `Authorization: Bearer <token>`. */
  token?: string
  bodyLimitBytes?: number
  /** Where local runs write their output (runs/<id>); default: the supervisor's. */
  runsDir?: string
  /** Which server files clients may name in runs; default none (catalog, hub ids and URLs only). */
  policy?: PathPolicy
  /** Where `headroom sweep` output directories are listed from (default: sweeps). */
  sweepsDir?: string
}

/**
 * Builds the app.
 * @example const app = createApp({ store, metrics, hub, services: defaultServices() })
 */
export function createApp(deps: AppDeps): Hono {
  const limit = deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES
  const app = new Hono()
  app.onError((err, c) => {
    const known = fromLibraryError(err)
    if (known) return c.json({ issues: known.issues }, known.status)
    // A bug: the details go to the server's log, never to the client.
    process.stderr.write(`headroom server: ${c.req.method} ${c.req.path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    return c.json({ issues: [{ code: 'internal', path: '', message: 'internal error; the server log has the details' }] }, 500)
  })
  app.notFound((c) => c.json({ issues: [{ code: 'not_found', path: 'path', message: `no route ${c.req.method} ${c.req.path}` }] }, 404))
  // The dashboard loads only its own files; a strict CSP keeps an injected run name or model
  // string from ever running as script.
  app.use(
    '*',
    secureHeaders({
      // Plain HTTP on a local port: HSTS would only confuse a browser that later meets https.
      strictTransportSecurity: false,
      contentSecurityPolicy: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
      },
    }),
  )
  if (deps.token) app.use('*', bearerAuth({ token: deps.token, open: ['/healthz'] }))
  app.use('/v1/*', limitBody(limit))
  app.route('/', healthRoutes())
  app.route('/', metricsRoutes(deps.metrics))
  app.route('/', staticRoutes())
  app.route('/', sweepRoutes(deps.sweepsDir ?? 'sweeps'))
  app.route('/v1', planRoutes(deps.services))
  app.route('/v1', catalogRoutes(deps.services))
  app.route('/v1', runRoutes({ store: deps.store, hub: deps.hub, runsDir: deps.runsDir, policy: deps.policy ?? pathPolicy([]) }))
  return app
}
