import { configDefaults, defineConfig } from 'vitest/config'
import { BaseSequencer, type TestSpecification } from 'vitest/node'

/** Files run in name order, so the story that exhausts the login rate limit (`z-…`) is last. */
class ByName extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    return [...files].sort((a, b) => a.moduleId.localeCompare(b.moduleId))
  }
}

// The browser stories (`npm run e2e`): the real server and Debian's Chromium, one file at a
// time; see e2e/global-setup.ts. `npm run screenshots` writes docs/screenshots/ instead of a
// temporary directory.
// `browser.e2e.ts` is the agent's browser: live view, take-over, screenshots
// (`npm run e2e:browser` runs it alone).
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.ts'],
    exclude: [...configDefaults.exclude],
    environment: 'node',
    globalSetup: ['e2e/global-setup.ts'],
    fileParallelism: false,
    sequence: { sequencer: ByName },
    testTimeout: 180_000,
    hookTimeout: 120_000,
  },
})
