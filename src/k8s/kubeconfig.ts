/**
 * Which kubeconfig, context and namespace a cluster command uses: pure decisions, so the one
 * module that talks to a cluster (submit.ts) only loads what is decided here. The order is
 * kubectl's: a flag wins over the environment, the environment over the home directory.
 */
import { delimiter, join } from 'node:path'

/** Where the cluster credentials come from. */
export type KubeconfigSource =
  | { kind: 'files'; paths: string[]; from: '--kubeconfig' | 'KUBECONFIG' | '~/.kube/config' }
  | { kind: 'in-cluster' }
  | { kind: 'none'; looked: string[] }

/**
 * Picks the kubeconfig the way kubectl does: --kubeconfig, else every file named in
 * KUBECONFIG (merged, the first one's current-context wins), else ~/.kube/config, else the
 * pod's service account when running inside a cluster.
 */
export function kubeconfigSource(input: {
  flag?: string
  env?: string
  home?: string
  exists: (path: string) => boolean
  serviceAccountToken?: string
}): KubeconfigSource {
  if (input.flag) return { kind: 'files', paths: [input.flag], from: '--kubeconfig' }
  const fromEnv = (input.env ?? '').split(delimiter).filter(Boolean)
  if (fromEnv.length) return { kind: 'files', paths: fromEnv, from: 'KUBECONFIG' }
  const looked = ['--kubeconfig', 'KUBECONFIG']
  if (input.home) {
    const file = join(input.home, '.kube', 'config')
    if (input.exists(file)) return { kind: 'files', paths: [file], from: '~/.kube/config' }
    looked.push(file)
  }
  if (input.serviceAccountToken && input.exists(input.serviceAccountToken)) return { kind: 'in-cluster' }
  return { kind: 'none', looked }
}

/** --namespace, else the context's namespace, else `default` (kubectl's rule). */
export function resolveNamespace(flag: string | undefined, contextNamespace: string | undefined): string {
  return flag || contextNamespace || 'default'
}

/**
 * The namespace an object goes to: the command's, unless the object names another one, which
 * is refused when --namespace was given (kubectl refuses the same mismatch) and kept otherwise.
 * Returns an error message instead of a namespace when they disagree.
 */
export function objectNamespace(
  objectNs: string | undefined,
  namespace: string,
  namespaceFromFlag: boolean,
): { namespace: string } | { error: string } {
  if (!objectNs || objectNs === namespace) return { namespace }
  if (namespaceFromFlag) return { error: `says namespace "${objectNs}" but --namespace is "${namespace}": remove one of them or make them agree` }
  return { namespace: objectNs }
}
