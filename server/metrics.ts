/** Prometheus metrics of one app (its own registry, so that several apps can live in one process). */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The app's metrics. */
export interface Metrics {
  registry: Registry;
  requests: Counter<'method' | 'route' | 'status'>;
  duration: Histogram<'method' | 'route'>;
  conversions: Counter<'result'>;
  inference: Histogram<'kind'>;
  bytesServed: Counter<'route'>;
}

/** Create the metrics (with the process's default metrics when `defaults`). */
export function createMetrics(defaults = false): Metrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'acs_hub_' });
  return {
    registry,
    requests: new Counter({ name: 'acs_hub_http_requests_total', help: 'HTTP requests by route and status', labelNames: ['method', 'route', 'status'], registers: [registry] }),
    duration: new Histogram({
      name: 'acs_hub_http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120],
      registers: [registry],
    }),
    conversions: new Counter({ name: 'acs_hub_conversions_total', help: 'Conversions asked for, by result: produced, cached (served from the store), failed, cancelled', labelNames: ['result'], registers: [registry] }),
    inference: new Histogram({
      name: 'acs_hub_inference_duration_seconds',
      help: 'Network time of inference requests',
      labelNames: ['kind'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    bytesServed: new Counter({ name: 'acs_hub_bytes_served_total', help: 'Bytes of file downloads sent', labelNames: ['route'], registers: [registry] }),
  };
}
