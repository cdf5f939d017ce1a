// Pure serial rules: no I/O, `now` passed in.

/** Derived status shown in the API: REVOKED > SUSPENDED > EXPIRED > ACTIVE. */
export function displayStatus (status: string, expiresAt: Date | number | null, now: number): 'ACTIVE' | 'SUSPENDED' | 'REVOKED' | 'EXPIRED' {
  if (status === 'REVOKED' || status === 'SUSPENDED') return status
  const exp = expiresAt instanceof Date ? expiresAt.getTime() : expiresAt
  return exp !== null && exp <= now ? 'EXPIRED' : 'ACTIVE'
}
