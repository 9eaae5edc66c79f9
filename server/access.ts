/**
 * Who may call what: one table, per operation of openapi.yaml (method and path as written
 * there), and the one key gate that reads it. Nothing else in the server decides access.
 *
 * - `public`: never needs a key (liveness and readiness probes, the web page and the docs).
 * - `read`: needs a key when `server.protectReads` is set.
 * - `cached`: a read of a cached result, as `read`; producing the result on a miss (a
 *   conversion) needs a key whenever keys are set. The gate tells the route with `mayCompute`.
 * - `key`: needs a key whenever keys are set. Everything that loads or runs a model, converts,
 *   stores or cancels is here.
 *
 * With keys set, a request that matches no entry is refused (fail closed): a route added to
 * the app without an entry here is unreachable without a key. With no keys configured, the
 * server is open and the table is not consulted.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Request, RequestHandler, Response } from 'express';
import type { AcsHubError } from '../converters/errors.js';
import { httpError } from './errors.js';
import type { Services } from './services.js';

/** What an operation needs; see the module comment. */
export type Access = 'public' | 'read' | 'cached' | 'key';

/** One operation of openapi.yaml and what it needs. */
export interface RouteAccess {
  readonly method: 'GET' | 'HEAD' | 'POST' | 'DELETE';
  /** The path as openapi.yaml writes it, with `{param}` segments. */
  readonly path: string;
  readonly access: Access;
}

/** The table. A test checks that it lists every operation of openapi.yaml, and only those. */
export const ACCESS: readonly RouteAccess[] = [
  { method: 'GET', path: '/healthz', access: 'public' },
  { method: 'GET', path: '/readyz', access: 'public' },
  // Route names, counts and timings: for the operator's scraper, which can send a bearer token.
  { method: 'GET', path: '/metrics', access: 'key' },
  // The web page, the API reference and the contract: static files, the same for everyone.
  { method: 'GET', path: '/', access: 'public' },
  { method: 'GET', path: '/web/{file}', access: 'public' },
  { method: 'GET', path: '/docs', access: 'public' },
  { method: 'GET', path: '/docs/{file}', access: 'public' },
  { method: 'GET', path: '/openapi.yaml', access: 'public' },

  { method: 'GET', path: '/v1/zoo', access: 'read' },
  { method: 'GET', path: '/v1/zoo/{namespace}/{name}', access: 'read' },
  { method: 'GET', path: '/v1/zoo/{namespace}/{name}/{mode}/{file}', access: 'cached' },

  { method: 'POST', path: '/v1/conversions', access: 'key' },
  { method: 'GET', path: '/v1/conversions/{jobId}', access: 'read' },
  { method: 'DELETE', path: '/v1/conversions/{jobId}', access: 'key' },
  { method: 'GET', path: '/v1/conversions/{jobId}/events', access: 'read' },

  { method: 'POST', path: '/v1/uploads', access: 'key' },
  { method: 'GET', path: '/v1/uploads/{uploadId}', access: 'read' },

  { method: 'GET', path: '/v1/checkpoints', access: 'read' },
  { method: 'GET', path: '/v1/checkpoints/{checkpointId}', access: 'read' },
  { method: 'GET', path: '/v1/checkpoints/{checkpointId}/files', access: 'read' },
  { method: 'GET', path: '/v1/checkpoints/{checkpointId}/files/{file}', access: 'cached' },
  { method: 'HEAD', path: '/v1/checkpoints/{checkpointId}/files/{file}', access: 'cached' },
  { method: 'POST', path: '/v1/checkpoints/{checkpointId}/infer', access: 'key' },

  // The Open Inference Protocol: the server's own metadata and health are probes; everything
  // that names a model loads it (metadata reads its card, ready warms a session), so needs a key.
  { method: 'GET', path: '/v2', access: 'public' },
  { method: 'GET', path: '/v2/health/live', access: 'public' },
  { method: 'GET', path: '/v2/health/ready', access: 'public' },
  { method: 'GET', path: '/v2/models/{modelName}', access: 'key' },
  { method: 'GET', path: '/v2/models/{modelName}/ready', access: 'key' },
  { method: 'GET', path: '/v2/models/{modelName}/versions/{modelVersion}', access: 'key' },
  { method: 'GET', path: '/v2/models/{modelName}/versions/{modelVersion}/ready', access: 'key' },
  { method: 'POST', path: '/v2/models/{modelName}/infer', access: 'key' },
  { method: 'POST', path: '/v2/models/{modelName}/versions/{modelVersion}/infer', access: 'key' },

  // The Hugging Face Hub's read protocol: reads of a conversion, converting on a miss.
  { method: 'GET', path: '/api/models/{namespace}/{name}', access: 'cached' },
  { method: 'GET', path: '/api/models/{namespace}/{name}/revision/{revision}', access: 'cached' },
  { method: 'GET', path: '/api/models/{namespace}/{name}/tree/{revision}', access: 'cached' },
  { method: 'POST', path: '/api/models/{namespace}/{name}/paths-info/{revision}', access: 'cached' },
  { method: 'GET', path: '/{namespace}/{name}/resolve/{revision}/{file}', access: 'cached' },
  { method: 'HEAD', path: '/{namespace}/{name}/resolve/{revision}/{file}', access: 'cached' },
  { method: 'GET', path: '/{namespace}/{name}/raw/{revision}/{file}', access: 'cached' },
  { method: 'HEAD', path: '/{namespace}/{name}/raw/{revision}/{file}', access: 'cached' },
];

// As express routes: case-insensitive, an optional trailing slash, one segment per parameter.
const MATCHERS = ACCESS.map((r) => ({
  ...r,
  re: new RegExp(`^${r.path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}/?$`, 'i'),
}));

/** The table's entry for a request (HEAD falls back to GET, as in express), or undefined. */
export function accessOf(method: string, path: string): RouteAccess | undefined {
  const m = method.toUpperCase();
  const find = (wanted: string) => MATCHERS.find((r) => r.method === wanted && r.re.test(path));
  const hit = find(m) ?? (m === 'HEAD' ? find('GET') : undefined);
  return hit && { method: hit.method, path: hit.path, access: hit.access };
}

function matches(token: string, keys: readonly string[]): boolean {
  const t = Buffer.from(token);
  let ok = false;
  for (const k of keys) {
    const b = Buffer.from(k);
    if (b.length === t.length && timingSafeEqual(b, t)) ok = true;
  }
  return ok;
}

/** Does this request carry a valid key (always true when no keys are configured)? */
function keyed(req: Request, s: Services): boolean {
  if (s.apiKeys.length === 0) return true;
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m !== null && matches(m[1]!, s.apiKeys);
}

/** The 401 of a request without a valid key. */
export function unauthorised(req: Request, why = 'this request needs an API key: send Authorization: Bearer <key>'): AcsHubError {
  return httpError('UNAUTHORIZED', req.headers.authorization ? 'the API key is not valid' : why, { 'WWW-Authenticate': 'Bearer realm="acs-hub"' });
}

/** Whether the gate let this request produce what is not cached yet (see `cached`). */
export function mayCompute(res: Response): boolean {
  return res.locals['mayCompute'] === true;
}

/**
 * The key check for every request, before anything else reads it (a request without a key
 * gets 401, not a 400 about its body, and never reaches a route that loads a model).
 */
export function keyGate(s: Services): RequestHandler {
  return (req, res, next) => {
    const ok = keyed(req, s);
    res.locals['mayCompute'] = ok;
    if (ok) return next();
    const access = accessOf(req.method, req.path)?.access ?? 'key';
    if (access === 'public' || ((access === 'read' || access === 'cached') && !s.cfg.server.protectReads)) return next();
    next(unauthorised(req));
  };
}
