/**
 * API keys: bearer tokens from the configuration. Everything that writes or computes needs one
 * (when keys are configured); reads need one only with `protectReads`.
 */
import { timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { HttpError } from './errors.js';
import type { Services } from './services.js';

function matches(token: string, keys: readonly string[]): boolean {
  const t = Buffer.from(token);
  let ok = false;
  for (const k of keys) {
    const b = Buffer.from(k);
    if (b.length === t.length && timingSafeEqual(b, t)) ok = true;
  }
  return ok;
}

/** Does this request carry a valid key (or are no keys configured)? */
export function authorised(header: string | undefined, s: Services): boolean {
  if (s.apiKeys.length === 0) return true;
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m !== null && matches(m[1]!, s.apiKeys);
}

/** Require a key for `scope` ('write' always when keys exist; 'read' with protectReads). */
export function requireKey(s: Services, scope: 'read' | 'write'): RequestHandler {
  return (req, _res, next) => {
    if (scope === 'read' && !s.cfg.server.protectReads) return next();
    if (authorised(req.headers.authorization, s)) return next();
    next(new HttpError('UNAUTHORIZED', req.headers.authorization ? 'the API key is not valid' : 'this request needs an API key: send Authorization: Bearer <key>', { 'WWW-Authenticate': 'Bearer realm="acs-hub"' }));
  };
}

// Operations are open; the Open Inference Protocol answers its own errors (`{"error": ...}`).
const OPEN = /^\/(healthz|readyz|metrics|v2(\/.*)?)$/;

/**
 * The key check for every request, before the contract is validated (a request without a
 * key gets 401, not a 400 about its body). Writes and computations are POST and DELETE.
 */
export function keyGate(s: Services): RequestHandler {
  return (req, _res, next) => {
    if (s.apiKeys.length === 0 || OPEN.test(req.path)) return next();
    const write = req.method !== 'GET' && req.method !== 'HEAD';
    if (!write && !s.cfg.server.protectReads) return next();
    if (authorised(req.headers.authorization, s)) return next();
    next(new HttpError('UNAUTHORIZED', req.headers.authorization ? 'the API key is not valid' : 'this request needs an API key: send Authorization: Bearer <key>', { 'WWW-Authenticate': 'Bearer realm="acs-hub"' }));
  };
}
