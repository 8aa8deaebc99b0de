/**
 * The run store's schema, as an ordered list of migrations. SQLite's `user_version` pragma
 * records how many have been applied, so a database written by an older Headroom is
 * upgraded in place and never rebuilt. Append new entries; never edit a shipped one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: runs, their configs and plans, the event log and the per-step metric samples.
  `
  CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    -- 'local': started by this server through the supervisor; 'remote': reported by
    -- another process with \`headroom tune --server\`.
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    device TEXT,
    device_name TEXT,
    model TEXT,
    method TEXT,
    total_steps INTEGER,
    steps INTEGER NOT NULL DEFAULT 0,
    last_loss REAL,
    predicted_peak_bytes INTEGER,
    measured_peak_bytes INTEGER,
    output_dir TEXT,
    options_json TEXT,
    summary_json TEXT,
    -- sequence number of the last stored event; events are numbered 1, 2, ... per run
    last_seq INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX runs_created ON runs (created_at);
  CREATE INDEX runs_state ON runs (state);

  CREATE TABLE configs (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    text TEXT NOT NULL
  );

  CREATE TABLE plans (
    run_id TEXT PRIMARY KEY REFERENCES runs (id) ON DELETE CASCADE,
    plan_json TEXT NOT NULL
  );

  CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    t REAL NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
  ) WITHOUT ROWID;

  CREATE TABLE samples (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    t REAL NOT NULL,
    allocated_bytes INTEGER NOT NULL,
    reserved_bytes INTEGER NOT NULL,
    peak_allocated_bytes INTEGER NOT NULL,
    device_used_bytes INTEGER NOT NULL,
    loss REAL,
    tokens_per_second REAL,
    PRIMARY KEY (run_id, step)
  ) WITHOUT ROWID;
  `,
  // 2: the max_length worst case beside the run's prediction (predicted_peak_bytes is the
  // planner's peak at the longest batch actually trained).
  `ALTER TABLE runs ADD COLUMN predicted_max_length_peak_bytes INTEGER;`,
  // 3: the planner's pre-flight warning for a run this server started (runtime/oom-advice.ts preflightWarning).
  `ALTER TABLE runs ADD COLUMN warning TEXT;`,
]
