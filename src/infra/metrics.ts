// Prometheus metrics with the contract's names. One registry per app instance (tests build many).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface Metrics {
  readonly registry: Registry
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>
  readonly graphqlDuration: Histogram<'operation_type' | 'operation_name'>
  readonly validations: Counter<'code'>
  readonly usageEvents: Counter
  readonly cacheRequests: Counter<'level' | 'result'>
  readonly activeSerials: Gauge
  readonly activeDevices: Gauge
  readonly clients: Gauge
  readonly outboxPending: Gauge
  readonly webhookDeliveries: Counter<'status'>
  /** Event bus handlers that threw or rejected (createEventBus's subscriberErrors). */
  readonly busSubscriberErrors: Counter
}

export function createMetrics (): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  // prom-client names three gauges `nodejs_active_{handles,requests,resources}_total`; `_total` is
  // reserved for counters (promtool check metrics refuses them). The same numbers stay available
  // by type in `nodejs_active_handles` etc.: `sum(nodejs_active_handles)` is the old total.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(name)
  }
  const buckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
  return {
    registry,
    httpDuration: new Histogram({ name: 'http_request_duration_seconds', help: 'HTTP request duration by route template', labelNames: ['method', 'route', 'status_code'], buckets, registers: [registry] }),
    graphqlDuration: new Histogram({ name: 'graphql_operation_duration_seconds', help: 'GraphQL operation duration', labelNames: ['operation_type', 'operation_name'], buckets, registers: [registry] }),
    validations: new Counter({ name: 'serials_validations_total', help: 'Serial validations by result code', labelNames: ['code'], registers: [registry] }),
    usageEvents: new Counter({ name: 'serials_usage_events_total', help: 'Usage events recorded', registers: [registry] }),
    cacheRequests: new Counter({ name: 'serials_cache_requests_total', help: 'Cache lookups by level (l1, l2) and result (hit, miss)', labelNames: ['level', 'result'], registers: [registry] }),
    activeSerials: new Gauge({ name: 'serials_active_serials', help: 'Serials with status ACTIVE and not expired (refreshed periodically)', registers: [registry] }),
    activeDevices: new Gauge({ name: 'serials_active_devices', help: 'Devices holding a slot (refreshed periodically)', registers: [registry] }),
    clients: new Gauge({ name: 'serials_clients', help: 'Clients (refreshed periodically)', registers: [registry] }),
    outboxPending: new Gauge({ name: 'serials_outbox_pending', help: 'Domain events written but not yet published (refreshed periodically)', registers: [registry] }),
    webhookDeliveries: new Counter({ name: 'serials_webhook_deliveries_total', help: 'Webhook delivery attempts by outcome', labelNames: ['status'], registers: [registry] }),
    // No topic label: topics carry client ids. The log line names the topic.
    busSubscriberErrors: new Counter({ name: 'serials_bus_subscriber_errors_total', help: 'Event bus subscriber handlers that threw or rejected', registers: [registry] })
  }
}
