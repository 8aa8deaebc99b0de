/**
 * POST /v1/plans answers the same MemoryPlan as `headroom plan --json` for the same flags;
 * GET /v1/plan-fields serves the plan-field table the dashboard's form is built from;
 * POST /v1/checks validates a tuning config as `headroom check --json` does.
 */
import { Hono } from 'hono'
import { z } from 'zod'
import { CHECK_TARGETS, TUNING_METHODS } from '../../config/rules.ts'
import { readJson, readJsonRaw } from '../body.ts'
import type { Services } from '../services.ts'

const checkBody = z
  .object({
    /** The ConfigMap or bare training_config YAML, as text. */
    config: z.string().min(1).max(512 * 1024),
    model: z.string().min(1).max(512).optional(),
    gpu: z.string().min(1).max(128).optional(),
    seq: z.number().int().positive().max(10_000_000).optional(),
    method: z.enum(TUNING_METHODS).optional(),
    /** cluster adds KAITO's rules for a Workspace (output_dir under /mnt). */
    target: z.enum(CHECK_TARGETS).optional(),
  })
  .strict()

export function planRoutes(services: Services): Hono {
  return new Hono()
    .post('/plans', async (c) => c.json(await services.plan(await readJsonRaw(c))))
    .get('/plan-fields', async (c) => c.json({ fields: await services.planFields() }))
    .post('/checks', async (c) => c.json(await services.check(await readJson(c, checkBody))))
}
