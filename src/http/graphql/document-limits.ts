// Bounds on what one GraphQL document may ask for, applied on every transport (HTTP and
// WebSocket): size before parsing, depth after validation, and the work a mutation requests,
// counted on the fields that will execute (fragments, named and inline, resolved; @skip/@include
// applied), so aliases and fragments cannot multiply work past the bounds.
import {
  getDirectiveValues, GraphQLError, GraphQLIncludeDirective, GraphQLSkipDirective, Kind, valueFromASTUntyped,
  type ASTVisitor, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type OperationDefinitionNode,
  type SelectionSetNode, type ValidationContext, type ValueNode
} from 'graphql'
import { ValidationError } from '../../kernel/errors.ts'

/** Lexical tokens one document may hold (graphql-js stops parsing past it). */
export const MAX_TOKENS = 10_000
/** Nesting of `{`, `[` and `(` in the document text, checked before parsing. */
export const MAX_NESTING = 40
/** Field depth of a query (fragments resolved), outside introspection. */
export const QUERY_DEPTH = 10
/** Field depth inside `__schema` / `__type`; the standard introspection query needs 13. */
export const INTROSPECTION_DEPTH = 20
/** Work units one document may request: createSerials counts its `count`, any other mutation field 1. */
export const MAX_DOCUMENT_WORK = 10_000

const INTROSPECTION_FIELDS = new Set(['__schema', '__type'])

/**
 * Refuses a document nested deeper than MAX_NESTING before the (recursive) parser sees it. A
 * linear scan with no recursion: strings, block strings and comments are skipped.
 */
export function checkDocumentText (source: string): void {
  let depth = 0
  const n = source.length
  for (let i = 0; i < n; i++) {
    const c = source.charCodeAt(i)
    if (c === 35 /* # */) {
      while (i < n && source.charCodeAt(i) !== 10 && source.charCodeAt(i) !== 13) i++
    } else if (c === 34 /* " */) {
      if (source.startsWith('"""', i)) {
        const end = source.indexOf('"""', i + 3)
        // Escaped \""" inside a block string: keep looking past it.
        let close = end
        while (close > 0 && source.charCodeAt(close - 1) === 92) close = source.indexOf('"""', close + 3)
        if (close < 0) return // unterminated: the parser reports it
        i = close + 2
      } else {
        i++
        while (i < n && source.charCodeAt(i) !== 34) {
          const ch = source.charCodeAt(i)
          if (ch === 10 || ch === 13) break
          if (ch === 92) i++
          i++
        }
      }
    } else if (c === 123 || c === 91 || c === 40) {
      if (++depth > MAX_NESTING) throw new ValidationError(`Document nesting exceeds the limit of ${MAX_NESTING}`)
    } else if ((c === 125 || c === 93 || c === 41) && depth > 0) {
      depth--
    }
  }
}

/** Parse options for graphql-js: the token bound keeps parsing linear in a bounded input. */
export const PARSE_OPTIONS = { maxTokens: MAX_TOKENS, noLocation: false }

/**
 * Validation rule: the deepest field path of each operation, fragments resolved. Introspection
 * (`__schema`, `__type`) has its own, larger bound, so standard tools can load the schema.
 */
export function DepthLimitRule (context: ValidationContext): ASTVisitor {
  const fragments = new Map<string, FragmentDefinitionNode>()
  for (const d of context.getDocument().definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d)

  // Depth of a selection set's deepest field below it; `seen` guards fragment cycles (reported by
  // NoFragmentCyclesRule, which runs alongside).
  function depthOf (set: SelectionSetNode, seen: Set<string>, introspection: { deepest: number }, inIntrospection: boolean): number {
    let deepest = 0
    for (const s of set.selections) {
      let d = 0
      if (s.kind === Kind.FIELD) {
        const entering = !inIntrospection && INTROSPECTION_FIELDS.has(s.name.value)
        if (entering) {
          const below = s.selectionSet ? depthOf(s.selectionSet, seen, introspection, true) : 0
          introspection.deepest = Math.max(introspection.deepest, 1 + below)
          continue
        }
        d = 1 + (s.selectionSet ? depthOf(s.selectionSet, seen, introspection, inIntrospection) : 0)
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        d = depthOf(s.selectionSet, seen, introspection, inIntrospection)
      } else {
        const name = s.name.value
        const fragment = fragments.get(name)
        if (!fragment || seen.has(name)) continue
        seen.add(name)
        d = depthOf(fragment.selectionSet, seen, introspection, inIntrospection)
        seen.delete(name)
      }
      deepest = Math.max(deepest, d)
    }
    return deepest
  }

  return {
    OperationDefinition (node) {
      const introspection = { deepest: 0 }
      const depth = depthOf(node.selectionSet, new Set(), introspection, false)
      const name = node.name?.value ?? 'anonymous'
      if (depth > QUERY_DEPTH) context.reportError(new GraphQLError(`Operation ${name} has depth ${depth}; the limit is ${QUERY_DEPTH}`, { nodes: [node] }))
      if (introspection.deepest > INTROSPECTION_DEPTH) {
        context.reportError(new GraphQLError(`Introspection in operation ${name} has depth ${introspection.deepest}; the limit is ${INTROSPECTION_DEPTH}`, { nodes: [node] }))
      }
    }
  }
}

/** The operation that will run: the named one, else the only one; undefined when ambiguous. */
export function selectOperation (document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode | undefined {
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION)
  if (operationName) return ops.find((d) => d.name?.value === operationName)
  return ops.length === 1 ? ops[0] : undefined
}

export type Variables = Record<string, unknown> | null | undefined

function included (node: FieldNode | { directives?: FieldNode['directives'] }, variables: Variables): boolean {
  if (!node.directives?.length) return true
  const vars = variables ?? {}
  try {
    if (getDirectiveValues(GraphQLSkipDirective, node as FieldNode, vars)?.if === true) return false
    if (getDirectiveValues(GraphQLIncludeDirective, node as FieldNode, vars)?.if === false) return false
  } catch {
    // A bad directive argument fails execution anyway; count the field.
  }
  return true
}

/**
 * The root fields an operation will execute, one per response key (as graphql-js merges them),
 * after resolving named and inline fragments and applying @skip / @include.
 */
export function executedRootFields (document: DocumentNode, operation: OperationDefinitionNode, variables: Variables): FieldNode[] {
  const fragments = new Map<string, FragmentDefinitionNode>()
  for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) fragments.set(d.name.value, d)
  const fields = new Map<string, FieldNode>()
  const visited = new Set<string>()
  // Explicit stack: no recursion however fragments chain.
  const stack: SelectionSetNode[] = [operation.selectionSet]
  while (stack.length > 0) {
    const set = stack.pop()!
    for (const s of [...set.selections].reverse()) {
      if (!included(s, variables)) continue
      if (s.kind === Kind.FIELD) {
        const key = s.alias?.value ?? s.name.value
        if (!fields.has(key)) fields.set(key, s)
      } else if (s.kind === Kind.INLINE_FRAGMENT) {
        stack.push(s.selectionSet)
      } else if (!visited.has(s.name.value)) {
        visited.add(s.name.value)
        const fragment = fragments.get(s.name.value)
        if (fragment) stack.push(fragment.selectionSet)
      }
    }
  }
  return [...fields.values()]
}

function argumentValue (field: FieldNode, name: string, variables: Variables): unknown {
  const arg = field.arguments?.find((a) => a.name.value === name)
  return arg ? valueOf(arg.value, variables) : undefined
}

function valueOf (node: ValueNode, variables: Variables): unknown {
  return valueFromASTUntyped(node, variables ?? {})
}

/** Work units of one root mutation field: createSerials counts the serials it makes. */
function fieldWork (field: FieldNode, variables: Variables): number {
  if (field.name.value === 'createSerials') {
    const input = argumentValue(field, 'input', variables) as { count?: unknown } | undefined
    const count = Number(input?.count)
    return Number.isFinite(count) && count > 1 ? Math.ceil(count) : 1
  }
  return 1
}

/** Refuses a mutation document whose fields together request more than MAX_DOCUMENT_WORK. */
export function checkDocumentWork (document: DocumentNode, operation: OperationDefinitionNode, variables: Variables): void {
  if (operation.operation !== 'mutation') return
  let work = 0
  for (const field of executedRootFields(document, operation, variables)) work += fieldWork(field, variables)
  if (work > MAX_DOCUMENT_WORK) {
    throw new ValidationError(`Document requests ${work} units of work; the limit is ${MAX_DOCUMENT_WORK} per request (createSerials counts its count, other mutations 1)`, [
      { field: 'query', message: `at most ${MAX_DOCUMENT_WORK} units of work per request` }
    ])
  }
}

/**
 * A bounded `operation_name` metric label: the first root field the operation runs when the schema
 * has it (`validateSerial`, `serials`, `__schema`…), else `other`. Caller-chosen names never
 * become series.
 */
export function metricOperationName (document: DocumentNode, operation: OperationDefinitionNode | undefined, variables: Variables, known: ReadonlySet<string>): string {
  if (!operation) return 'other'
  const first = executedRootFields(document, operation, variables).find((f) => f.name.value !== '__typename') ??
    executedRootFields(document, operation, variables)[0]
  const name = first?.name.value
  return name && (known.has(name) || name === '__typename' || INTROSPECTION_FIELDS.has(name)) ? name : 'other'
}

/** Drops graphql-js "Did you mean …?" hints, which reveal the schema when introspection is off. */
export function withoutSuggestions (message: string): string {
  return message.replace(/\s*Did you mean [^?]*\?/g, '')
}
