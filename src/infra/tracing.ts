// OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (OTLP over HTTP, JSON);
// server.ts starts it before anything that traces is made.
// Spans, all written here by hand rather than by monkey-patching loaders:
// - HTTP: one SERVER span per request, opened around Fastify's handler (serverFactory), named by
//   route template, with W3C traceparent accepted from the caller;
// - GraphQL: one span per root field (Pothos tracing plugin, graphql/builder.ts);
// - PostgreSQL: one CLIENT span per statement (postgres.js clients wrapped in database.ts);
// - Redis: one CLIENT span per command (ioredis clients wrapped in redis.ts).
// Database and Redis spans are made only inside a traced request, so background polling does not
// flood the collector. Log lines carry trace_id and span_id (pino mixin, app.ts).
// Statement text is recorded without values; command arguments are never recorded.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { context, propagation, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace'

let enabled = false

/** True once startTracing ran with an endpoint; clients and the app made after it trace. */
export function tracingEnabled (): boolean {
  return enabled
}

export const tracer = trace.getTracer('serials')

let provider: TracerProvider | undefined

/** Registers the SDK once (when an endpoint is configured); returns a function that flushes and stops it. */
export function startTracing (endpoint: string | undefined, serviceName: string): () => Promise<void> {
  if (!endpoint) return async () => {}
  enabled = true
  if (!provider) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
    propagation.setGlobalPropagator(new W3CTraceContextPropagator())
    provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': serviceName }),
      spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${endpoint.replace(/\/$/, '')}/v1/traces` }), scheduledDelayMillis: 1000 })]
    })
    trace.setGlobalTracerProvider(provider)
  }
  const current = provider
  return async () => { await current.forceFlush(); await current.shutdown() }
}

/** A Fastify serverFactory that runs each request inside its HTTP SERVER span. */
export function tracedServerFactory (handler: (req: IncomingMessage, res: ServerResponse) => void) {
  return createServer((req, res) => {
    const parent = propagation.extract(context.active(), req.headers)
    const span = tracer.startSpan(`${req.method ?? 'HTTP'}`, {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': req.method ?? '', 'url.path': (req.url ?? '').split('?')[0] ?? '' }
    }, parent)
    res.once('close', () => {
      span.setAttribute('http.response.status_code', res.statusCode)
      if (res.statusCode >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
      span.end()
    })
    context.with(trace.setSpan(parent, span), () => handler(req, res))
  })
}

/** Names the request's span after its route template once Fastify has routed it. */
export function nameRequestSpan (method: string, route: string | undefined): void {
  const span = trace.getActiveSpan()
  if (!span || !route) return
  span.updateName(`${method} ${route}`)
  span.setAttribute('http.route', route)
}

/** trace_id and span_id of the active span, for log lines. */
export function logIds (): Record<string, string> {
  const span = enabled ? trace.getActiveSpan() : undefined
  if (!span) return {}
  const { traceId, spanId } = span.spanContext()
  return { trace_id: traceId, span_id: spanId }
}

/** A CLIENT span under the active one, or undefined outside a traced request. */
export function childSpan (name: string, attributes: Record<string, string>): Span | undefined {
  if (!enabled || !trace.getActiveSpan()) return undefined
  return tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes })
}

/** Ends a span when the promise settles, recording a failure. */
export function endWith (span: Span | undefined, promise: PromiseLike<unknown>): void {
  if (!span) return
  promise.then(() => span.end(), (error: unknown) => {
    span.recordException(error as Error)
    span.setStatus({ code: SpanStatusCode.ERROR })
    span.end()
  })
}
