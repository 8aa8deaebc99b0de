/** Debian's chromium through playwright-core, launched the one way every dashboard test needs. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type BrowserContext } from 'playwright-core'

export const CHROMIUM = '/usr/bin/chromium'
/** A test's `skip`: the reason when this machine has no chromium. */
export const chromiumSkip: string | false = !existsSync(CHROMIUM) && `no ${CHROMIUM}`

// Headless in a container: no sandbox, no GPU, and nothing that reaches the network.
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync']

export type Chromium = { context: BrowserContext; close(): Promise<void> }

/** A fresh profile per launch (removed on close), so tests never share cookies or storage. */
export async function launchChromium(viewport?: { width: number; height: number }): Promise<Chromium> {
  const userDataDir = mkdtempSync(join(tmpdir(), 'headroom-chromium-'))
  const context = await chromium.launchPersistentContext(userDataDir, { executablePath: CHROMIUM, headless: true, args: ARGS, ...(viewport ? { viewport } : {}) })
  return {
    context,
    async close() {
      await context.close()
      rmSync(userDataDir, { recursive: true, force: true })
    },
  }
}
