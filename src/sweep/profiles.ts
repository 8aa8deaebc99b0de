/**
 * Device profiles: overhead terms fitted by `headroom sweep --calibrate`, one JSON file each
 * under the user's config dir ($XDG_CONFIG_HOME/headroom/profiles/NAME.json, else
 * ~/.config/headroom/profiles/NAME.json). Read by request resolution for plan --device-profile.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import { join } from 'node:path'
import { z } from 'zod'
import { ExitError } from '../errors.ts'
import { DEVICES } from '../planner/fields.ts'
import type { CalibratedOverhead } from '../planner/overhead.ts'

export const PROFILE_NAME = /^[A-Za-z0-9._-]{1,64}$/

export const deviceProfile = z.object({
  name: z.string().regex(PROFILE_NAME),
  device: z.enum(DEVICES),
  gpu: z.string().nullable(),
  fittedAt: z.string(),
  /** The sweep it was fitted from, and how many measured points. */
  sweep: z.string(),
  points: z.number().int().nonnegative(),
  terms: z.object({ contextBytes: z.number(), slackFraction: z.number().min(0), workspaceBytes: z.number() }),
  /** Root-mean-square of measured - predicted allocated peak over the sweep's points, bytes: with the published terms, and with these. */
  error: z.object({ before: z.number(), after: z.number() }),
})
export type DeviceProfile = z.infer<typeof deviceProfile>

/** The profiles directory, e.g. /home/me/.config/headroom/profiles. */
export function profilesDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(homedir(), '.config')
  return join(base, 'headroom', 'profiles')
}

export function profilePath(name: string, env: NodeJS.ProcessEnv = process.env): string {
  if (!PROFILE_NAME.test(name)) throw new ExitError(`profile name "${name}" must be 1-64 letters, digits, dots, dashes or underscores, e.g. cpu or A100-80GB`, { path: 'deviceProfile' })
  return join(profilesDir(env), `${name}.json`)
}

export function writeProfile(profile: DeviceProfile): string {
  const path = profilePath(profile.name)
  mkdirSync(profilesDir(), { recursive: true })
  writeFileSync(`${path}.tmp`, `${JSON.stringify(profile, null, 2)}\n`)
  renameSync(`${path}.tmp`, path)
  return path
}

/**
 * A profile's terms for the planner; ExitError naming the file and the fix when it is missing or broken.
 * @example loadProfile('cpu').workspaceBytes
 */
export function loadProfile(name: string): DeviceProfile & { overhead: CalibratedOverhead } {
  const path = profilePath(name)
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch {
    throw new ExitError(`device profile "${name}" does not exist (${path}): fit it with headroom sweep SPEC.yaml --calibrate --profile ${name}`, { path: 'deviceProfile', exitCode: 1 })
  }
  let parsed
  try {
    parsed = deviceProfile.safeParse(JSON.parse(text))
  } catch {
    parsed = null
  }
  if (!parsed?.success) throw new ExitError(`device profile ${path} is not a profile Headroom wrote: fit it again with headroom sweep SPEC.yaml --calibrate --profile ${name}`, { path: 'deviceProfile', exitCode: 1 })
  const p = parsed.data
  return { ...p, overhead: { profile: p.name, ...p.terms } }
}
