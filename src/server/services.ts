/**
 * The library functions the API serves, bound lazily: the server process loads the planner,
 * the config checker, the catalog and the supervisor only when a route first needs them.
 * Tests can pass their own.
 */
import type { MemoryPlan } from '../planner/types.ts'
import type { StartRun } from './hub.ts'
import { httpError } from './http-error.ts'

export type CheckInput = { config: string; model?: string; gpu?: string; seq?: number; method?: 'lora' | 'qlora'; target?: 'local' | 'cluster' }

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

export function defaultServices(): Services {
  return {
    async plan(body) {
      // `config` names a file on the planner's machine: a client must not make the server read
      // its files. A config's text is planned through POST /v1/checks instead.
      if (body !== null && typeof body === 'object' && 'config' in body) {
        throw httpError(400, 'unknown_field', 'config', 'POST /v1/plans takes plan fields only; send a config\'s text to POST /v1/checks (with model and gpu) to plan it')
      }
      const { planFromRequest } = await import('../request/index.ts')
      return planFromRequest(body)
    },
    async planFields() {
      return (await import('../planner/fields.ts')).planFieldsJson()
    },
    async check(input) {
      const { checkConfig } = await import('../config/index.ts')
      return checkConfig(input.config, { model: input.model, gpu: input.gpu, seq: input.seq, method: input.method, target: input.target, names: 'fields' })
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
