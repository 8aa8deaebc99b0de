/**
 * The library functions the API serves, bound lazily: the server process loads the planner,
 * the config checker, the catalog and the supervisor only when a route first needs them.
 * Tests can pass their own.
 */
import type { Target, TuningMethod } from '../config/rules.ts'
import type { MemoryPlan } from '../planner/types.ts'
import type { StartRun } from './hub.ts'
import { checkInWorker, type CheckWorkerOptions } from './check-worker.ts'
import { checkFileRef, checkModelRef, pathPolicy, type PathPolicy } from './path-policy.ts'

export type CheckInput = { config: string; model?: string; gpu?: string; seq?: number; method?: TuningMethod; target?: Target }

export type Services = {
  /** Validates plan flags (camelCase) and plans; throws HttpError/ExitError/ConfigError for bad input. */
  plan(body: unknown): Promise<MemoryPlan>
  /** The plan-field table (names, types, choices, defaults, help) the dashboard builds its form from. */
  planFields(): Promise<unknown[]>
  check(input: CheckInput): Promise<unknown>
  startRun(): Promise<StartRun>
  models(): Promise<unknown[]>
  gpus(): Promise<unknown[]>
}

export type ServicesOptions = {
  /** Which server files clients may name; default: nothing but the catalog, hub ids and URLs. */
  policy?: PathPolicy
  /** Limits of the check worker (tests lower them). */
  check?: CheckWorkerOptions
}

export function defaultServices(opts: ServicesOptions = {}): Services {
  const policy = opts.policy ?? pathPolicy([])
  return {
    async plan(body) {
      // `model` and `config` may name server files: only those under the allowed roots are read.
      if (body !== null && typeof body === 'object' && !Array.isArray(body)) {
        const { model, config } = body as Record<string, unknown>
        if (typeof model === 'string') checkModelRef(policy, 'model', model)
        if (typeof config === 'string') checkFileRef(policy, 'config', config)
      }
      const { planFromRequest } = await import('../request/index.ts')
      return planFromRequest(body)
    },
    async planFields() {
      return (await import('../planner/fields.ts')).planFieldsJson()
    },
    async check(input) {
      if (input.model !== undefined) checkModelRef(policy, 'model', input.model)
      // A large config takes seconds to check: a worker thread keeps the server answering.
      return checkInWorker(input, opts.check)
    },
    async startRun() {
      const { startRun } = await import('../runtime/index.ts')
      // The server stops its runs itself on SIGINT/SIGTERM (hub.shutdown); the supervisor
      // forwarding the same signal again would interrupt the trainer's checkpoint.
      return (opts) => startRun(opts, { forwardSignals: false })
    },
    async models() {
      // The summary the explorer needs; the full architecture (every Linear) stays server-side.
      return (await import('../catalog/index.ts')).listModels().map((m) => ({
        name: m.name,
        hfId: m.hfId ?? null,
        modelType: m.modelType,
        params: m.params,
        numLayers: m.numLayers,
        hiddenSize: m.hiddenSize,
        vocabSize: m.vocabSize,
        maxPositionEmbeddings: m.maxPositionEmbeddings,
      }))
    },
    async gpus() {
      return (await import('../catalog/index.ts')).listGpus()
    },
  }
}
