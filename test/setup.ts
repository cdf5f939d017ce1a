// Runs once before the test files (tap "before"): generates the shared development secrets,
// including the RSA-4096 key, so parallel test processes do not each generate one.
import { loadDevSecrets } from '../src/config/dev-secrets.ts'
import { TEST_DATA_DIR } from './helper.ts'

await loadDevSecrets(TEST_DATA_DIR, 'RSA-PSS-4096', true)
await loadDevSecrets(TEST_DATA_DIR, 'ED25519', true)
