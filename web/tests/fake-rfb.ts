// A stand-in for noVNC's RFB (jsdom has no canvas to draw on and no VNC server to talk to):
// it records how it was made and set, and the test says when it connects or drops.
import type { RfbOptions } from '@novnc/novnc'
import { setRfbLoader, type RfbClass } from '@/lib/vnc'

export class FakeRfb extends EventTarget {
  static all: FakeRfb[] = []
  viewOnly = false
  scaleViewport = false
  clipViewport = false
  resizeSession = false
  focusOnClick = true
  showDotCursor = false
  background = ''
  qualityLevel = 6
  compressionLevel = 2
  closed = false
  focused = 0
  readonly canvas: HTMLCanvasElement

  constructor(
    readonly target: HTMLElement,
    readonly url: string,
    readonly options: RfbOptions = {},
  ) {
    super()
    FakeRfb.all.push(this)
    this.canvas = document.createElement('canvas')
    target.appendChild(this.canvas)
  }

  /** the server finished the RFB handshake */
  connect(): void {
    this.dispatchEvent(new Event('connect'))
  }

  /** the connection closed from the other side */
  drop(): void {
    this.canvas.remove()
    this.dispatchEvent(new CustomEvent('disconnect', { detail: { clean: false } }))
  }

  disconnect(): void {
    this.closed = true
    this.canvas.remove()
    this.dispatchEvent(new CustomEvent('disconnect', { detail: { clean: true } }))
  }

  focus(): void {
    this.focused++
  }

  blur(): void {}

  static last(): FakeRfb {
    const r = FakeRfb.all.at(-1)
    if (!r) throw new Error('no RFB was created')
    return r
  }
}

export function useFakeRfb(): void {
  FakeRfb.all = []
  setRfbLoader(async () => FakeRfb as unknown as RfbClass)
}
