/**
 * `--data` and `--output-volume` values: a URL, or a PersistentVolumeClaim (and a path in it).
 * Pure; each bad value is one ExitError (exit 2) naming the flag, the value and the fix.
 */
import { isIP } from 'node:net'
import { ExitError } from '../errors.ts'
import { isDnsSubdomain } from './names.ts'

export type DataSource = { kind: 'url'; url: string } | { kind: 'pvc'; claim: string; path?: string }

const DATA_FIX = 'give an http(s) URL of the dataset file, or pvc:CLAIM/path for a file on a PersistentVolumeClaim, e.g. --data pvc:datasets/train.jsonl'

/**
 * @example parseData('pvc:datasets/dolly/train.jsonl') // { kind: 'pvc', claim: 'datasets', path: 'dolly/train.jsonl' }
 */
export function parseData(raw: string): DataSource {
  const bad = (why: string) => new ExitError(`--data is "${raw}": ${why}; ${DATA_FIX}`, { path: 'data' })
  if (raw.startsWith('pvc:')) {
    const rest = raw.slice(4)
    const slash = rest.indexOf('/')
    const claim = slash < 0 ? rest : rest.slice(0, slash)
    const path = slash < 0 ? '' : rest.slice(slash + 1).replace(/^\/+|\/+$/g, '')
    if (!isDnsSubdomain(claim)) throw bad(`"${claim}" is not a PersistentVolumeClaim name (lower-case letters, digits, '-' and '.')`)
    if (path.split('/').some((p) => p === '..' || p === '.')) throw bad('the path must stay inside the claim (no . or .. segments)')
    return path ? { kind: 'pvc', claim, path } : { kind: 'pvc', claim }
  }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw bad('it is neither a URL nor pvc:CLAIM/path')
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw bad(`the scheme ${url.protocol.replace(':', '')} is not http or https`)
  // KAITO's webhook (validateDataSourceURL) refuses hosts a pod must not be pointed at.
  const host = url.hostname.replace(/^\[|\]$/g, '')
  if (!host) throw bad('the URL has no host')
  if (blockedHost(host)) throw bad(`the host ${host} is a loopback, private, link-local or cloud-metadata address, which KAITO refuses`)
  return { kind: 'url', url: url.toString() }
}

/**
 * @example parseOutputVolume('pvc:tuning-results') // 'tuning-results'
 */
export function parseOutputVolume(raw: string): string {
  const claim = raw.startsWith('pvc:') ? raw.slice(4).replace(/\/+$/, '') : ''
  if (!claim || !isDnsSubdomain(claim)) {
    throw new ExitError(`--output-volume is "${raw}": give pvc:CLAIM, the name of a PersistentVolumeClaim for the adapter and checkpoints, e.g. --output-volume pvc:tuning-results`, { path: 'outputVolume' })
  }
  return claim
}

const METADATA_HOSTS = new Set(['localhost', 'metadata.google.internal', 'metadata.google', 'instance-data.ec2.internal'])

function blockedHost(host: string): boolean {
  const h = host.toLowerCase()
  if (METADATA_HOSTS.has(h) || h.endsWith('.localhost')) return true
  const v = isIP(h)
  if (v === 4) {
    const [a, b] = h.split('.').map(Number)
    return a === 127 || a === 10 || a === 0 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168) || (a === 169 && b === 254)
  }
  if (v === 6) return h === '::1' || h === '::' || /^f[cd]/.test(h) || /^fe[89ab]/.test(h)
  return false
}
