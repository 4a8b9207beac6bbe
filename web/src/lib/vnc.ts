/**
 * The agent's live browser (docs/api.md: `POST /sessions/{id}/vnc/signed-url`, the VNC
 * WebSocket, `POST /sessions/{id}/takeover`): signed URL → WebSocket URL, the two routes, and
 * noVNC's `RFB` class, loaded on demand so the main bundle stays small.
 */
import type RFB from '@novnc/novnc'
import { requestRaw } from '@/api/client'

export type RfbClass = typeof RFB
export type Rfb = InstanceType<RfbClass>

export type TakeoverAction = 'take' | 'hand_back'

export interface VncSignedUrl {
  signed_url: string
  expires_in: number
}

/** Minutes a signed VNC URL lives: it is used at once (the socket outlives it). */
export const VNC_URL_MINUTES = 2

/**
 * The WebSocket URL of a signed VNC URL. The server answers a path
 * (`/api/v1/sessions/{id}/vnc?signature=…&expires=…`), made absolute on this page's host with
 * `wss:` under https and `ws:` otherwise; an absolute http(s) URL keeps its host and swaps
 * the scheme; a ws(s) URL is used as is. Anything else (javascript:, `//host`, relative
 * paths, control characters) → undefined.
 */
export function vncWebSocketUrl(
  signedUrl: unknown,
  loc: Pick<Location, 'protocol' | 'host'> = globalThis.location,
): string | undefined {
  if (typeof signedUrl !== 'string' || !signedUrl || signedUrl.trim() !== signedUrl) return undefined
  if (/[\u0000-\u001f\u007f\\]/.test(signedUrl)) return undefined
  const secure = loc.protocol === 'https:'
  if (signedUrl.startsWith('/') && !signedUrl.startsWith('//')) {
    try {
      const u = new URL(signedUrl, `${secure ? 'https' : 'http'}://${loc.host}`)
      return `${secure ? 'wss' : 'ws'}://${u.host}${u.pathname}${u.search}`
    } catch {
      return undefined
    }
  }
  let u: URL
  try {
    u = new URL(signedUrl)
  } catch {
    return undefined
  }
  switch (u.protocol) {
    case 'ws:':
    case 'wss:':
      return u.href
    case 'http:':
      // never downgrade a page served over https (the browser would refuse mixed content)
      u.protocol = secure ? 'wss:' : 'ws:'
      return u.href
    case 'https:':
      u.protocol = 'wss:'
      return u.href
    default:
      return undefined
  }
}

/** A fresh signed URL for the session's live view (409 while no browser runs). */
export function requestVncUrl(sessionId: string, minutes = VNC_URL_MINUTES): Promise<VncSignedUrl> {
  return requestRaw<VncSignedUrl>('post', `/sessions/${encodeURIComponent(sessionId)}/vnc/signed-url`, {
    body: { expire_minutes: minutes },
  })
}

/** Takes control of the browser, or hands it back (409 while no browser runs). */
export async function requestTakeover(sessionId: string, action: TakeoverAction): Promise<void> {
  await requestRaw<null>('post', `/sessions/${encodeURIComponent(sessionId)}/takeover`, { body: { action } })
}

let rfbLoader: () => Promise<RfbClass> = async () => (await import('@novnc/novnc')).default

/** noVNC's `RFB` class, imported on first use (its own chunk). */
export function loadRfb(): Promise<RfbClass> {
  return rfbLoader()
}

/** Tests: replace noVNC with a fake (jsdom has no canvas or WebSocket server). */
export function setRfbLoader(load: () => Promise<RfbClass>): void {
  rfbLoader = load
}
