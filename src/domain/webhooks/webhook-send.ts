// One POST of a delivery to a target whose addresses were checked (resolveWebhookTarget). node:http
// rather than fetch: its `lookup` option pins the connection to those addresses, and a fresh agent
// per request means no pooled socket opened for an earlier check is reused.
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { pinnedLookup } from './webhook-url.ts'

export interface WebhookTarget {
  url: URL
  /** The addresses the check approved; the only ones connected to. */
  addresses: string[]
}

/** The answer's HTTP status; rejects on a network error, or with a TimeoutError after `timeoutMs` (headers included). */
export function postWebhook (target: WebhookTarget, headers: Record<string, string>, body: string, timeoutMs: number): Promise<number> {
  const send = target.url.protocol === 'https:' ? httpsRequest : httpRequest
  const signal = AbortSignal.timeout(timeoutMs)
  return new Promise((resolve, reject) => {
    // Host header and TLS servername come from the URL's name; redirects are never followed.
    const request = send(target.url, {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      lookup: pinnedLookup(target.addresses),
      agent: false,
      signal
    }, (response) => {
      // Only the status counts: the body is not read.
      resolve(response.statusCode ?? 0)
      response.destroy()
    })
    request.on('error', (error) => reject(signal.aborted ? signal.reason : error))
    request.end(body)
  })
}
