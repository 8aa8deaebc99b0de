/** The SQLite run store: open a file, then read and write runs through RunStore. */
export { openDb } from './db.ts'
export type { Db } from './db.ts'
export { RunStore } from './runs.ts'
export type { RunRecord, RunSource, StoredEvent, Sample, LatestSample } from './runs.ts'
export { foldEvent, isTerminal, TERMINAL_STATES } from './fold.ts'
export type { RunProgress } from './fold.ts'
