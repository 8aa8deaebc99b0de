/**
 * Opens the SQLite file behind the run store. WAL mode lets the dashboard and /metrics keep
 * reading while a run writes; migrations run once per open, inside one transaction.
 */
import Database from 'better-sqlite3'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { MIGRATIONS } from './migrations.ts'

export type Db = Database.Database

/**
 * Opens (creating when needed) a run-store database and brings its schema up to date.
 * @example const db = openDb('.headroom/headroom.db')
 */
export function openDb(file: string): Db {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true })
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  // NORMAL is durable across application crashes in WAL mode; only a power loss can drop
  // the last transactions, which for telemetry is the right trade for write speed.
  db.pragma('synchronous = NORMAL')
  db.pragma('foreign_keys = ON')
  // A second process (a CLI reading the same file) may hold the write lock briefly.
  db.pragma('busy_timeout = 5000')
  migrate(db)
  return db
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number
  if (current > MIGRATIONS.length) {
    throw new Error(
      `the run store was written by a newer Headroom (schema ${current}, this one knows ${MIGRATIONS.length}): upgrade Headroom or use another --db`,
    )
  }
  db.transaction(() => {
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v])
    db.pragma(`user_version = ${MIGRATIONS.length}`)
  })()
}
