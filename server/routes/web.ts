/**
 * The web page at `/` (plain HTML, CSS and ES modules from `server/web/`, no build step), the
 * API reference at `/docs` (Swagger UI from the installed `swagger-ui-dist`, no CDN) and the
 * contract itself at `/openapi.yaml`. Only the files listed when the app is built are served,
 * by their bare names: no directory listing, no path reaching outside those folders.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router, type Response } from 'express';
import { httpError } from '../errors.js';

/** The folder of the page's static files. */
export const WEB_DIR = fileURLToPath(new URL('../../../server/web/', import.meta.url));

// The package's folder, without loading its index (which runs its 1.7 MB bundle in Node).
const getAbsoluteFSPath = createRequire(import.meta.url)('swagger-ui-dist/absolute-path.js') as () => string;

/** The files of swagger-ui-dist that /docs needs. */
const SWAGGER_FILES = ['swagger-ui.css', 'swagger-ui-bundle.js', 'favicon-32x32.png'];

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.yaml': 'application/yaml; charset=utf-8',
};

// Scripts only from this origin, requests only to it; Swagger UI sets inline styles.
const PAGE_HEADERS = {
  'Content-Security-Policy': "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
};

/** A file that may be served: where it is and its ETag (of its bytes when the app was built). */
interface Listed {
  path: string;
  etag: string;
}

function listed(path: string): Listed {
  return { path, etag: `"${createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 32)}"` };
}

/** Name -> every servable file in `dir` with a known type (no sub-folders). */
function listing(dir: string, only?: readonly string[]): Map<string, Listed> {
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && TYPES[extname(e.name)] && (!only || only.includes(e.name)))
    .map((e) => e.name);
  return new Map(names.map((n) => [n, listed(join(dir, n))]));
}

/** Send one listed file; revalidated on every use (ETag, 304), since names carry no version. */
function sendListed(res: Response, file: Listed): Promise<void> {
  const headers = { 'Content-Type': TYPES[extname(file.path)]!, 'Cache-Control': 'no-cache', ETag: file.etag, ...PAGE_HEADERS };
  return new Promise((resolve, reject) => {
    // send answers If-None-Match with 304 against the ETag set here (the app turns its own off).
    res.sendFile(file.path, { headers, cacheControl: false, lastModified: false, dotfiles: 'deny' }, (err) => (err ? reject(err) : resolve()));
  });
}

/** Routes /, /web/{file}, /docs, /docs/{file} and /openapi.yaml. */
export function webRoutes(openapiPath: string): Router {
  const web = listing(WEB_DIR);
  const swagger = listing(getAbsoluteFSPath(), SWAGGER_FILES);
  const r = Router();
  const spec = listed(openapiPath);
  const file = (files: Map<string, Listed>, name: string | undefined): Listed => {
    const found = name === undefined ? undefined : files.get(name);
    if (!found) throw httpError('NOT_FOUND', `no file '${name}'`);
    return found;
  };
  r.get('/', (_req, res) => sendListed(res, file(web, 'index.html')));
  r.get('/web/:file', (req, res) => sendListed(res, file(web, req.params['file'])));
  r.get('/docs', (_req, res) => sendListed(res, file(web, 'docs.html')));
  r.get('/docs/:file', (req, res) => sendListed(res, file(swagger, req.params['file'])));
  r.get('/openapi.yaml', (_req, res) => sendListed(res, spec));
  return r;
}
