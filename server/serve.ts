/**
 * Running the app: an HTTP server with request timeouts, and a graceful shutdown that stops
 * accepting connections, lets in-flight requests (downloads included) finish within the grace
 * period, drains conversion jobs, then closes the engine and the store.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createApp, type AcsHubApp } from './app.js';
import type { HubConfig } from './config.js';
import type { ServiceOverrides } from './services.js';

/** A running server. */
export interface RunningServer {
  url: string;
  server: Server;
  hub: AcsHubApp;
  /** Shut down gracefully (idempotent). */
  shutdown(): Promise<void>;
}

/** Start serving on the configured host and port (0 picks a free port). */
export async function startServer(cfg: Readonly<HubConfig>, overrides: ServiceOverrides = {}): Promise<RunningServer> {
  const hub = await createApp(cfg, overrides);
  const server = createServer(hub.app);
  server.requestTimeout = cfg.server.requestTimeoutMs;
  server.headersTimeout = Math.min(60_000, cfg.server.requestTimeoutMs);
  server.keepAliveTimeout = 5_000;
  let inflight = 0;
  let idle: (() => void) | undefined;
  server.on('request', (_req, res) => {
    inflight++;
    res.on('close', () => {
      inflight--;
      if (inflight === 0) idle?.();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.server.port, cfg.server.host, () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  const url = `http://${host}:${port}`;
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    stopping ??= (async () => {
      const { logger } = hub.services;
      hub.services.state.shuttingDown = true;
      const started = Date.now();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      logger.info({ inflight }, 'shutting down: finishing in-flight requests');
      if (inflight > 0) {
        await Promise.race([new Promise<void>((resolve) => (idle = resolve)), new Promise((r) => setTimeout(r, cfg.server.shutdownGraceMs).unref())]);
      }
      await hub.services.jobs.drain(Math.max(0, cfg.server.shutdownGraceMs - (Date.now() - started)));
      server.closeAllConnections();
      await closed;
      await hub.close();
      logger.info({ ms: Date.now() - started }, 'stopped');
    })();
    return stopping;
  };
  return { url, server, hub, shutdown };
}
