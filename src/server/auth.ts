/**
 * Bearer-token auth. With a token set, every route but /healthz needs it. Browsers cannot
 * put a header on a page load or an EventSource, so opening the dashboard once with
 * `?access_token=T` (RFC 6750 §2.3) stores it in an HttpOnly, SameSite=Strict cookie that
 * later requests carry.
 */
import { timingSafeEqual, createHash } from 'node:crypto'
import type { MiddlewareHandler } from 'hono'
import { getCookie, setCookie } from 'hono/cookie'
import { httpError } from './http-error.ts'

export const TOKEN_COOKIE = 'headroom_token'

/** Constant-time comparison, hashing first so different lengths leak nothing either. */
function same(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest()
  return timingSafeEqual(h(a), h(b))
}

/**
 * Requires `token` on every request except `open` paths.
 * @example app.use('*', bearerAuth({ token: 'T', open: ['/healthz'] }))
 */
export function bearerAuth(opts: { token: string; open: readonly string[] }): MiddlewareHandler {
  return async (c, next) => {
    if (opts.open.includes(c.req.path)) return next()
    const header = c.req.header('authorization')
    const bearer = header?.match(/^Bearer\s+(.+)$/i)?.[1]
    const query = c.req.query('access_token')
    const cookie = getCookie(c, TOKEN_COOKIE)
    const candidate = bearer ?? query ?? cookie
    if (candidate === undefined || !same(candidate, opts.token)) {
      c.header('WWW-Authenticate', 'Bearer realm="headroom"')
      throw httpError(401, 'unauthorized', 'authorization', candidate === undefined ? 'this server needs a token: send Authorization: Bearer <token>' : 'the token is not valid')
    }
    if (query !== undefined && cookie === undefined) {
      setCookie(c, TOKEN_COOKIE, query, { httpOnly: true, sameSite: 'Strict', path: '/' })
    }
    return next()
  }
}
