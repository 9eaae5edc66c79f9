/** `acs-hub serve`: the HTTP API (openapi.yaml) on the configured store and engine. */
import { startServer } from '../server/serve.js';
import { parse, UsageError } from './args.js';
import { cliConfig, STORE_OPTIONS } from './context.js';
import type { ConfigOverrides } from '../server/config.js';
import { loadConfig } from '../server/config.js';

const USAGE = 'acs-hub serve [--port 8080] [--host 127.0.0.1] [--data ./data | --s3 s3://bucket/prefix] [--config FILE] [--offline]';

/** Run the subcommand (until SIGINT or SIGTERM). */
export async function runServe(argv: string[]): Promise<void> {
  const { values } = parse(argv, { port: { type: 'string' }, host: { type: 'string' }, ...STORE_OPTIONS }, USAGE);
  if (values.help) {
    process.stdout.write(`Usage: ${USAGE}\n\nServes the HTTP API described by openapi.yaml. Settings: --config FILE, ACS_HUB_* variables\n(ACS_HUB_API_KEYS, ACS_HUB_DEVICE, ACS_HUB_THREADS, ACS_HUB_URL_ALLOW_LIST, ...); see README.md.\n`);
    return;
  }
  const base = cliConfig(values);
  const server: ConfigOverrides['server'] = {};
  if (values.port !== undefined) {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer in [0, 65535], got '${values.port}'`);
    server.port = port;
  }
  if (values.host !== undefined) server.host = values.host;
  const cfg = Object.keys(server).length > 0 ? loadConfig({ configFile: typeof values.config === 'string' ? values.config : undefined, overrides: { ...overridesOf(base), server } }) : base;
  const running = await startServer(cfg);
  process.stderr.write(`acs-hub listening on ${running.url} (store ${running.hub.services.storage.location}, device ${cfg.inference.device})\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      running.shutdown().then(resolve, resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

/** The store settings of an already loaded configuration, as overrides. */
function overridesOf(cfg: ReturnType<typeof cliConfig>): ConfigOverrides {
  return { dataDir: cfg.dataDir, s3: { url: cfg.s3.url }, offline: cfg.offline };
}
