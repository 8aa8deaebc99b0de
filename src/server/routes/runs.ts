/**
 * Runs: start a local fine-tune, list and read runs, follow one as server-sent events,
 * cancel it, and take events reported by a remote `headroom tune --server`.
 */
import { Hono, type Context } from 'hono'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { z } from 'zod'
import { ExitError } from '../../errors.ts'
import { checkDistributed } from '../../runtime/torchrun.ts'
import { newRunId } from '../../runtime/run-id.ts'
import { runState, trainerEvent } from '../../runtime/events.ts'
import { LOSSES } from '../../planner/fields.ts'
import { DEVICE_CHOICES, METHOD_CHOICES, PARALLELISMS, WEIGHTS_MODES } from '../../runtime/trainer-choices.ts'
import type { RunStore } from '../../store/runs.ts'
import { readTuningFile } from '../../config/parse.ts'
import { readJson } from '../body.ts'
import { checkConfigRefs, checkFileRef, checkModelRef, type PathPolicy } from '../path-policy.ts'
import { httpError } from '../http-error.ts'
import type { RunHub } from '../hub.ts'
import { runEventStream } from '../sse.ts'
import { readBody } from '../validate.ts'

/**
 * Run ids become directory names under the runs folder and SQL keys: letters, digits, and
 * `.`, `_`, `-` after the first character, so no id can name a path outside it.
 */
export const RUN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const runId = z.string().regex(RUN_ID, 'a run id is 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit')

/** A model or data location: a path, hub id or URL handed to the trainer unchanged. */
const location = z
  .string()
  .min(1)
  .max(1024)
  .refine((s) => !s.includes('\0'), 'must not contain NUL')

/** The subset of TuneOptions a client may set; output directories and env stay server-side. */
const createRunBody = z
  .object({
    config: z.string().min(1).max(512 * 1024).optional(),
    model: location.optional(),
    data: location.optional(),
    maxSteps: z.number().int().positive().max(10_000_000).optional(),
    device: z.enum(DEVICE_CHOICES).optional(),
    method: z.enum(METHOD_CHOICES).optional(),
    /** Only a run id: a path here would let a client point the trainer at any directory. */
    resume: runId.optional(),
    skipBadRows: z.boolean().optional(),
    autoFit: z.boolean().optional(),
    // The levers (issue 13), as `headroom tune --loss --offload-activations --packing`.
    loss: z.enum(LOSSES).optional(),
    offloadActivations: z.boolean().optional(),
    packing: z.boolean().optional(),
    // As `headroom tune --weights`: random weights from the model's config (memory experiments).
    weights: z.enum(WEIGHTS_MODES).optional(),
    // Distributed on this server's node (issue 12), as `headroom tune --nproc N --parallelism P`;
    // multi-node runs start one supervisor per node, from the CLI.
    nproc: z.number().int().min(1).max(1024).optional(),
    parallelism: z.enum(PARALLELISMS).optional(),
    runId: runId.optional(),
  })
  .strict()
  // The combinations `tune` refuses as usage errors, by the same rules (runtime/torchrun.ts), as field issues.
  .superRefine((b, ctx) => {
    try {
      checkDistributed({ nproc: b.nproc, parallelism: b.parallelism }, 'fields')
    } catch (e) {
      if (!(e instanceof ExitError)) throw e
      ctx.addIssue({ code: 'custom', path: e.path ? [e.path] : [], message: e.message })
    }
  })

const listQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    state: runState.optional(),
  })
  .strict()

const eventsQuery = z.object({ after: z.coerce.number().int().min(0).optional() }).strict()

const ingestBody = z
  .object({
    events: z.array(trainerEvent).min(1).max(1000),
    /** Sequence number of events[0]; lets a retry resend a batch without duplicating it. */
    firstSeq: z.number().int().positive().optional(),
  })
  .strict()

function idParam(c: Context): string {
  return readBody(runId, c.req.param('id'), 'id')
}

/** The server paths a run request names (model, data, and those inside its config text) must be allowed. */
function checkRunPaths(policy: PathPolicy, body: z.infer<typeof createRunBody>): void {
  if (body.model !== undefined) checkModelRef(policy, 'model', body.model)
  if (body.data !== undefined) checkFileRef(policy, 'data', body.data)
  if (body.config !== undefined) for (const unit of readTuningFile(body.config).units) checkConfigRefs(policy, unit.raw)
}

export function runRoutes(deps: { store: RunStore; hub: RunHub; runsDir?: string; policy: PathPolicy }): Hono {
  const { store, hub } = deps
  const mustExist = (id: string) => {
    const run = store.getRun(id)
    if (!run) throw httpError(404, 'not_found', 'id', `no run ${id}`)
    return run
  }
  return new Hono()
    .post('/runs', async (c) => {
      const body = await readJson(c, createRunBody)
      checkRunPaths(deps.policy, body)
      const id = body.runId ?? newRunId()
      if (store.getRun(id)) throw httpError(409, 'conflict', 'runId', `run ${id} already exists`)
      // The config file goes into the run's directory, so check the id before writing it.
      const output = resolve(deps.runsDir ?? 'runs', id)
      // The supervisor reads the config from a file; keep the text the client sent next to
      // the run's output, where `headroom tune --resume` finds it again.
      let configPath: string | undefined
      if (body.config !== undefined) {
        mkdirSync(output, { recursive: true })
        configPath = join(output, 'request_config.yaml')
        writeFileSync(configPath, body.config)
      }
      const run = await hub.start({ ...body, config: configPath, runId: id, output }, body, body.config)
      return c.json(run, 201, { Location: `/v1/runs/${run.id}` })
    })
    .get('/runs', (c) => {
      const q = readBody(listQuery, c.req.query(), 'query')
      return c.json({ runs: store.listRuns(q) })
    })
    .get('/runs/:id', (c) => {
      const id = idParam(c)
      return c.json({ ...mustExist(id), plan: store.getPlan(id) ?? null })
    })
    .get('/runs/:id/events', (c) => {
      const id = idParam(c)
      mustExist(id)
      const q = readBody(eventsQuery, c.req.query(), 'query')
      const header = c.req.header('last-event-id')
      const fromHeader = header === undefined ? undefined : readBody(z.coerce.number().int().min(0), header, 'Last-Event-ID')
      return runEventStream(c, { store, hub, runId: id, afterSeq: fromHeader ?? q.after ?? 0 })
    })
    .post('/runs/:id/events', async (c) => {
      const id = idParam(c)
      const body = await readJson(c, ingestBody)
      const { accepted, run } = hub.ingest(id, body.events, body.firstSeq)
      return c.json({ accepted, lastSeq: run.lastSeq, state: run.state })
    })
    .post('/runs/:id/cancel', (c) => {
      const id = idParam(c)
      return c.json(hub.cancel(id), 202)
    })
}
