/**
 * Kubernetes: pure renderers for KAITO Workspaces and batch/v1 Jobs, admission and offline
 * validation. submit.ts (the only file that talks to an API server) builds on renderManifests.
 * @module
 */
export { renderManifests, RENDER_DEFAULTS, DEFAULT_IMAGE, isImageRef, graceSeconds, outputStorageGi } from './render.ts'
export type { RenderOptions, RenderResult, RenderTarget, Admission } from './types.ts'
export { admit, AdmissionRefused, LOW_HEADROOM_SHARE } from './admission.ts'
export { validateManifest, assertValid } from './validate.ts'
export { KAITO_TUNING_PRESETS, kaitoPreset } from './kaito-presets.ts'
export { parseData, parseOutputVolume } from './sources.ts'
export type { DataSource } from './sources.ts'
export { rendezvousService, TRAINER_CONTAINER, MOUNTS, RDZV_PORT } from './job.ts'
export { renderInference, parseAdapter, inferenceInput, DEFAULT_INFERENCE_SEQ, InferenceRefused } from './inference.ts'
export { SERVE_PORT, ADAPTERS_MOUNT, SERVER_CONTAINER } from './serving.ts'
