// zod at the service boundary: one parse for REST and GraphQL alike, failures in the contract format.
// Also the shared bounds every input obeys (dates, idempotency keys, JSON nesting), so that no value
// a caller can send reaches PostgreSQL, the certificate format or a recursive walk out of range.
import { z } from 'zod'
import { ValidationError, fieldErrors, type FieldError } from './errors.ts'

export function parseInput<S extends z.ZodType> (schema: S, input: unknown): z.output<S> {
  // Before the schema: a field the schema lets through as it is (an id, a name, a JSON value)
  // must not carry text PostgreSQL refuses to store, which would answer INTERNAL.
  const unstorable = unstorableTextFields(input)
  if (unstorable.length > 0) throw new ValidationError('Validation failed', unstorable)
  const result = schema.safeParse(input)
  if (!result.success) throw new ValidationError('Validation failed', fieldErrors(result.error.issues))
  return result.data
}

/** What a field holding text PostgreSQL cannot store is told. */
export const UNSTORABLE_TEXT = 'must not contain NUL characters (U+0000) or unpaired UTF-16 surrogates'
/**
 * NUL, which PostgreSQL refuses in text and in jsonb, and a UTF-16 surrogate without its pair,
 * which jsonb refuses (`\ud800`) and text would store as U+FFFD instead of what was sent.
 */
const UNSTORABLE = /\0|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

/** Whether a string holds text PostgreSQL cannot store (see UNSTORABLE_TEXT). */
export function unstorableText (text: string): boolean {
  return UNSTORABLE.test(text)
}

const plainContainer = (v: unknown): v is Record<string, unknown> | unknown[] => {
  if (typeof v !== 'object' || v === null) return false
  if (Array.isArray(v)) return true
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

/** Stands on the walk's stack for an object key that holds unstorable text. */
const BAD_KEY = Symbol('unstorable key')

/**
 * The fields of an input (GraphQL arguments, a REST body, a CLI call) whose strings or object keys,
 * at any depth, hold text PostgreSQL cannot store: `metadata.plan`, `ids.2`; a bad key names its
 * object. Iterative, so any nesting is walked safely; at most `max` fields, in the input's order.
 */
export function unstorableTextFields (input: unknown, max = 10): FieldError[] {
  const found: FieldError[] = []
  const stack: Array<[unknown, string]> = [[input, '']]
  while (stack.length > 0 && found.length < max) {
    const [value, path] = stack.pop()!
    if (value === BAD_KEY) {
      found.push({ field: path || 'input', message: `keys ${UNSTORABLE_TEXT}` })
    } else if (typeof value === 'string') {
      if (unstorableText(value)) found.push({ field: path || 'input', message: UNSTORABLE_TEXT })
    } else if (plainContainer(value)) {
      const entries: Array<[string, unknown]> = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value)
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!
        stack.push(unstorableText(key) ? [BAD_KEY, path] : [child, path ? `${path}.${key}` : key])
      }
    }
  }
  return found
}

/** Earliest date any input accepts: the Unix epoch (certificates carry seconds since it). */
export const MIN_DATE = new Date('1970-01-01T00:00:00.000Z')
/** Latest date any input accepts: four-digit years, which PostgreSQL, ISO-8601 and JWT `exp` all hold. */
export const MAX_DATE = new Date('9999-12-31T23:59:59.999Z')

/**
 * A date input (ISO-8601 string or Date) between MIN_DATE and MAX_DATE. JavaScript accepts years up
 * to ±275760, which PostgreSQL's timestamptz refuses with an error, so every date is bounded here.
 */
export const dateInput = z.coerce.date({ error: 'must be an ISO-8601 date and time' })
  .refine((d) => d.getTime() >= MIN_DATE.getTime() && d.getTime() <= MAX_DATE.getTime(), 'must be between 1970-01-01 and 9999-12-31')

/** Longest Idempotency-Key (header or `idempotencyKey` input field), in characters. */
export const MAX_IDEMPOTENCY_KEY = 255
/** 1–255 printable ASCII characters: fits the unique index and is safe to log. */
export const idempotencyKeyInput = z.string()
  .min(1, 'must not be empty')
  .max(MAX_IDEMPOTENCY_KEY, `must be at most ${MAX_IDEMPOTENCY_KEY} characters`)
  .regex(/^[\x20-\x7E]+$/, 'must be printable ASCII')

/** Deepest nesting of objects and arrays any JSON body may have. */
export const MAX_JSON_DEPTH = 32

/**
 * Whether JSON text nests objects/arrays deeper than `max`. One linear pass with a counter (no
 * recursion, no parse), so a 5,000-level body is refused before anything walks it recursively.
 * Brackets inside strings are skipped; the text need not be valid JSON (the parser judges that).
 */
export function jsonTooDeep (text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
      continue
    }
    if (c === 0x22) inString = true
    else if (c === 0x7b || c === 0x5b) { if (++depth > max) return true } else if (c === 0x7d || c === 0x5d) depth--
  }
  return false
}

/** Whether a parsed value nests deeper than `max`: iterative, so any depth is measured safely. */
export function valueTooDeep (value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: Array<[unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, d] = stack.pop()!
    if (v === null || typeof v !== 'object') continue
    if (d + 1 > max) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) stack.push([child, d + 1])
  }
  return false
}

/**
 * A JSON object field (`metadata`, `deviceInfo`) of at most `maxBytes` as JSON and MAX_JSON_DEPTH
 * levels. The depth is checked first and without recursion: a value that arrived by another path
 * than an HTTP body (a WebSocket message, a GraphQL literal, the CLI) never reaches JSON.stringify
 * or PostgreSQL's recursive jsonb parser too deep.
 */
export function jsonObjectInput (maxBytes: number) {
  return z.record(z.string(), z.unknown())
    .refine((m) => !valueTooDeep(m), { message: `must nest at most ${MAX_JSON_DEPTH} levels`, abort: true })
    .refine((m) => unstorableTextFields(m, 1).length === 0, { message: `keys and strings ${UNSTORABLE_TEXT}`, abort: true })
    .refine((m) => Buffer.byteLength(JSON.stringify(m)) <= maxBytes, `must be at most ${maxBytes / 1024} KiB as JSON`)
}
