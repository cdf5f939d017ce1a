// Development convenience: secrets generated once into DATA_DIR so restarts keep the same keys.
// Production refuses these (see config.ts).
import { createPublicKey, generateKeyPair, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'

const generateKeyPairAsync = promisify(generateKeyPair)

export interface DevSecrets {
  jwtSecret: string
  encryptionKey: Buffer
  pepper: Buffer
  signing?: { privateKeyPem: string, publicKeyPem: string }
}

async function readOrCreate (path: string, create: () => Promise<string>): Promise<string> {
  try {
    return await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
  }
  const value = await create()
  // Write then rename: two processes starting together both end up reading a whole file.
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(tmp, value, { mode: 0o600 })
  await rename(tmp, path)
  return readFile(path, 'utf8')
}

export async function loadDevSecrets (dataDir: string, algorithm: 'RSA-PSS-4096' | 'ED25519', needSigning: boolean): Promise<DevSecrets> {
  const dir = join(dataDir, 'secrets')
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const random = (bytes: number) => async () => randomBytes(bytes).toString('base64')
  const jwtSecret = await readOrCreate(join(dir, 'jwt-secret'), random(48))
  const encryptionKey = Buffer.from(await readOrCreate(join(dir, 'encryption-key'), random(32)), 'base64')
  const pepper = Buffer.from(await readOrCreate(join(dir, 'encryption-pepper'), random(32)), 'base64')
  if (!needSigning) return { jwtSecret, encryptionKey, pepper }

  const name = algorithm === 'ED25519' ? 'ed25519' : 'rsa4096'
  let pair: { privateKey: string, publicKey: string } | undefined
  const makePair = async () => {
    pair ??= algorithm === 'ED25519'
      ? await generateKeyPairAsync('ed25519', { privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } })
      : await generateKeyPairAsync('rsa', { modulusLength: 4096, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }, publicKeyEncoding: { type: 'spki', format: 'pem' } })
    return pair
  }
  const privateKeyPem = await readOrCreate(join(dir, `${name}-private.pem`), async () => (await makePair()).privateKey)
  // Derived from the private key on disk, so a race between two first starts cannot mismatch them.
  const publicKeyPem = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString()
  await writeFile(join(dir, `${name}-public.pem`), publicKeyPem)
  return { jwtSecret, encryptionKey, pepper, signing: { privateKeyPem, publicKeyPem } }
}
