/** Prometheus metrics for Headroom runs (prom-client, text format). */
export { RunMetrics } from './registry.ts'
export type { RunMetricsOptions } from './registry.ts'
