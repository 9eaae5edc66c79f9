/** Health, readiness (storage reachable, engine loaded) and Prometheus metrics. */
import { Router } from 'express';
import { bundledDevices } from '../../inference/runtime/providers.js';
import { probeStore } from '../../zoo/store.js';
import type { Services } from '../services.js';

/** Routes /healthz, /readyz, /metrics (the contract, /openapi.yaml, is served with the web page). */
export function opsRoutes(s: Services): Router {
  const r = Router();
  r.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  r.get('/readyz', async (_req, res) => {
    if (s.state.shuttingDown) {
      res.status(503).json({ status: 'shutting-down', storage: 'n/a', engine: 'n/a' });
      return;
    }
    let storage = 'ok';
    try {
      await probeStore(s.storage);
    } catch (err) {
      storage = `unreachable: ${(err as Error).message}`;
    }
    let engine = 'ok';
    try {
      engine = bundledDevices().includes('cpu') ? `ok (${s.cfg.inference.device})` : 'no cpu provider';
    } catch (err) {
      engine = `not loaded: ${(err as Error).message}`;
    }
    const ok = storage === 'ok' && engine.startsWith('ok');
    res.status(ok ? 200 : 503).json({ status: ok ? 'ready' : 'not-ready', storage, engine });
  });
  r.get('/metrics', async (_req, res) => {
    res.type(s.metrics.registry.contentType).send(await s.metrics.registry.metrics());
  });
  return r;
}
