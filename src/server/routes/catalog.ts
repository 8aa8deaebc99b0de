/** GET /v1/models and /v1/gpus: the catalog the dashboard's plan explorer offers. */
import { Hono } from 'hono'
import type { Services } from '../services.ts'

export function catalogRoutes(services: Services): Hono {
  return new Hono()
    .get('/models', async (c) => c.json({ models: await services.models() }))
    .get('/gpus', async (c) => c.json({ gpus: await services.gpus() }))
}
