/** Kubernetes object names: what the API server accepts (apimachinery validation). Pure. */

/** RFC 1123 label: lower-case alphanumerics and '-', at most 63 characters (pod hostnames, Service names). */
export const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/
/** RFC 1123 subdomain: labels joined by '.', at most 253 characters (ConfigMap, Job, PVC names). */
export const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

/**
 * Longest name render accepts: an Indexed Job's pods are `<name>-<index>-<5 random>` and their
 * hostnames `<name>-<index>`, and the Job controller puts the name in a 63-character label.
 */
export const MAX_NAME = 52

export function isDnsLabel(s: string, max = 63): boolean {
  return s.length <= max && DNS_LABEL.test(s)
}

export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS_SUBDOMAIN.test(s)
}

/**
 * A DNS label made from free text: `Phi-3.5-mini` -> `phi-3-5-mini`.
 * @example dnsLabel('microsoft/Phi-3-mini-128k-instruct') // 'microsoft-phi-3-mini-128k-instruct'
 */
export function dnsLabel(s: string, max = MAX_NAME): string {
  const out = s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .slice(0, max)
    .replace(/^-+|-+$/g, '')
  return out || 'headroom'
}
