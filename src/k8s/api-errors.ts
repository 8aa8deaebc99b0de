/**
 * What an API server's refusal means for the user: one line with the status, the object, the
 * server's own words and the fix. Pure, so the wording is tested without a cluster; submit.ts
 * feeds it the HTTP status and the `Status` body (k8s.io/apimachinery metav1.Status).
 */

/** The object a request was about, and where it went. */
export type RequestTarget = {
  verb: 'apply' | 'get' | 'watch' | 'list' | 'log'
  apiVersion: string
  kind: string
  name?: string
  namespace?: string
  /** The kubeconfig context and its server URL, for 401 and connection failures. */
  context: string
  server: string
}

/** The fields of a metav1.Status the messages use. */
export type ApiStatus = {
  message?: string
  reason?: string
  details?: { causes?: { field?: string; message?: string; reason?: string }[]; kind?: string; group?: string }
}

/** `Job train-phi3` or `Workspace train-phi3 in namespace ml`. */
function what(t: RequestTarget): string {
  return `${t.kind}${t.name ? ` ${t.name}` : ''}${t.namespace ? ` in namespace ${t.namespace}` : ''}`
}

const KAITO_GROUP = 'kaito.sh'

/** The fix when a custom resource's API is missing from the cluster. */
export function missingApi(t: RequestTarget): string {
  const group = t.apiVersion.split('/')[0]
  if (group === KAITO_GROUP) {
    return `the cluster behind context ${t.context} has no ${t.apiVersion} ${t.kind} API: KAITO's workspace controller is not installed. Install it (helm install kaito-workspace, see https://kaito-project.github.io/kaito/) or render for a plain cluster with --target job`
  }
  return `the cluster behind context ${t.context} has no ${t.apiVersion} ${t.kind} API: install the controller that provides it, or submit only built-in kinds`
}

/**
 * One line for a failed request.
 * @example apiErrorLine(403, { message: 'jobs.batch "x" is forbidden: ...' }, target)
 */
export function apiErrorLine(status: number, body: ApiStatus | string | undefined, t: RequestTarget): string {
  const st: ApiStatus = typeof body === 'string' ? { message: body.trim() || undefined } : (body ?? {})
  const said = st.message ? `: ${st.message}` : ''
  switch (status) {
    case 401:
      return `the API server at ${t.server} refused the credentials of context ${t.context} (401 Unauthorized)${said}. Refresh them (e.g. az aks get-credentials, or kubectl login) or pick another --context`
    case 403:
      return `not allowed to ${t.verb} ${what(t)} (403 Forbidden)${said}. Ask the cluster admin for a Role that allows "${t.verb === 'apply' ? 'patch' : t.verb}" on ${t.kind.toLowerCase()}s there, or use another --namespace or --context`
    case 404:
      // Server-side apply creates what is missing, so a 404 on apply means the namespace is
      // missing; a missing API (CRD) is caught by discovery before the apply (missingApi).
      if (t.verb === 'apply' && t.namespace) return namespaceMissing(t)
      return `${what(t)} was not found (404)${said}. Check the name with kubectl get ${t.kind.toLowerCase()}s${t.namespace ? ` -n ${t.namespace}` : ''}, or pass --namespace`
    case 409:
      return `conflict applying ${what(t)} (409 ${st.reason ?? 'Conflict'})${said}. Another field manager owns these fields; re-run with --force to take them over as field manager "headroom", or change the object's name with --name`
    case 422: {
      const causes = (st.details?.causes ?? []).map((c) => `${c.field ?? '?'}: ${c.message ?? c.reason ?? 'invalid'}`)
      const detail = causes.length ? `: ${causes.join('; ')}` : said
      return `the API server refused ${what(t)} as invalid (422)${detail}. Fix the field(s) named in the manifest (or the render flags that produce them) and submit again`
    }
    case 400:
      return `the API server refused the request for ${what(t)} (400 Bad Request)${said}. The manifest or a flag value is malformed: fix what the server names`
    default:
      return `the API server answered ${status} for ${t.verb} ${what(t)}${said}. Check the cluster (kubectl get --raw /readyz) and try again`
  }
}

function namespaceMissing(t: RequestTarget): string {
  return `namespace ${t.namespace} does not exist on the cluster behind context ${t.context} (404 while applying ${t.kind} ${t.name ?? ''}). Create it (kubectl create namespace ${t.namespace}) or pass another --namespace`
}

/** A request that never got an HTTP answer (refused connection, DNS, TLS). */
export function unreachableLine(cause: string, t: RequestTarget): string {
  return `cannot reach the API server at ${t.server} (context ${t.context}): ${cause}. Check that the cluster is up and that --kubeconfig/--context point at it`
}
