/**
 * The express app: request ids and structured logs, metrics, requests validated against
 * openapi.yaml (responses too when configured), the routes, and one error middleware that
 * answers every error as problem+json. No tensor maths here: routes parse, call converters/
 * or zoo/, and stream results.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import express, { type Express } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import { pinoHttp } from 'pino-http';
import type { HubConfig } from './config.js';
import { keyGate } from './access.js';
import { httpError, problemMiddleware } from './errors.js';
import { checkpointRoutes } from './routes/checkpoints.js';
import { conversionRoutes } from './routes/conversions.js';
import { hfRoutes, hubErrors, hubFormBodies } from './routes/hf.js';
import { kserveRoutes } from './routes/kserve.js';
import { opsRoutes } from './routes/ops.js';
import { uploadRoutes } from './routes/uploads.js';
import { webRoutes } from './routes/web.js';
import { zooRoutes } from './routes/zoo.js';
import { createServices, type ServiceOverrides, type Services } from './services.js';

/** Path of the API contract. */
export const OPENAPI_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

const REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** The package version (shown by /v2 and the CLI). */
export const VERSION = '0.1.0';

/** An app and the services behind it. */
export interface AcsHubApp {
  app: Express;
  services: Services;
  close(): Promise<void>;
}

/** Build the app from a configuration (tests may supply parts of the services). */
export async function createApp(cfg: Readonly<HubConfig>, overrides: ServiceOverrides = {}): Promise<AcsHubApp> {
  const services = await createServices(cfg, overrides);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(
    pinoHttp({
      logger: services.logger,
      genReqId: (req, res) => {
        const given = req.headers['x-request-id'];
        const id = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
        res.setHeader('X-Request-Id', id);
        return id;
      },
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'info' : 'debug'),
    }),
  );
  app.use((req, res, next) => {
    const end = services.metrics.duration.startTimer({ method: req.method });
    res.on('finish', () => {
      const route = `${req.baseUrl}${(req.route as { path?: string } | undefined)?.path ?? ''}` || 'unmatched';
      services.metrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      end({ route });
    });
    next();
  });
  app.use((req, _res, next) => {
    if (services.state.shuttingDown && req.method !== 'GET' && req.method !== 'HEAD') return next(httpError('SHUTTING_DOWN', 'the server is shutting down; retry on another replica'));
    next();
  });
  app.use(keyGate(services));
  app.use(opsRoutes(services));
  app.use(webRoutes(OPENAPI_PATH));
  for (const base of ['/v1', '/api']) app.use(base, express.json({ limit: cfg.server.maxJsonBytes, type: 'application/json' }));
  app.use(hubFormBodies(cfg.server.maxJsonBytes));
  app.use(
    OpenApiValidator.middleware({
      apiSpec: OPENAPI_PATH,
      validateRequests: { allowUnknownQueryParameters: false },
      validateResponses: cfg.server.validateResponses ? { onError: (err) => { throw err; } } : false,
      // KServe bodies (JSON or binary) are parsed and checked by their route, as the protocol says.
      ignorePaths: /^\/(v2\/models\/[^/]+(\/versions\/[^/]+)?\/infer|healthz|readyz|metrics|openapi\.yaml)$/,
      validateSecurity: false,
    }),
  );
  app.use(zooRoutes(services));
  app.use(conversionRoutes(services));
  app.use(uploadRoutes(services));
  app.use(checkpointRoutes(services));
  app.use(kserveRoutes(services, VERSION));
  app.use(hfRoutes(services));
  app.use((req, _res, next) => next(httpError('NOT_FOUND', `no route ${req.method} ${req.path}`)));
  app.use(hubErrors());
  app.use(problemMiddleware());
  return { app, services, close: () => services.close() };
}
