/**
 * The keys the Python trainer's config loader accepts, per training_config section: generated
 * from the installed transformers / peft / bitsandbytes classes into trainer-fields.json by
 * scripts/gen-trainer-fields.ts (`python -m headroom_runtime.config fields`), so `check` and the
 * trainer cannot drift apart (test/config/trainer-contract.test.ts regenerates and diffs it).
 */
import generated from './trainer-fields.json' with { type: 'json' }

export type TrainerFields = {
  generatedBy: string
  /** Versions the field lists were read from (trl: null when not installed; SFTConfig's fields are listed in config.py). */
  libraries: Record<string, string | null>
  /** Every key each section accepts, sorted. */
  sections: Record<string, string[]>
  /** `Section.key` of an old name -> the current name and why (an error in both the trainer and check). */
  renamed: Record<string, { to: string; why: string }>
  /** `Section.key` the installed libraries dropped with no new name -> what to do instead. */
  removed: Record<string, string>
}

export const TRAINER_FIELDS: TrainerFields = generated

/** Whether the trainer accepts `key` in `section`, e.g. `trainerAccepts('LoraConfig', 'exclude_modules')` → true. */
export function trainerAccepts(section: string, key: string): boolean {
  return TRAINER_FIELDS.sections[section]?.includes(key) ?? false
}
