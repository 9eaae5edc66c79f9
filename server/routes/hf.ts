/**
 * The Hugging Face Hub's read protocol, as `huggingface_hub` and `@huggingface/hub` read it, so
 * that they download from this server unchanged: a repository is a catalogue id (or alias)
 * whose revisions are the conversion modes (`main` = acs), or `checkpoints/<checkpointId>` at
 * `main`. Every file is served as an LFS file (ETag and `X-Linked-Etag` = its sha256), and a
 * revision's commit is its checkpoint id followed by 8 check digits, so that a client that
 * passes the commit back as a revision (as `snapshot_download` does) names the same checkpoint.
 */
import { createHash } from 'node:crypto';
import { Router, type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import { MODES, type Mode } from '../../converters/convert.js';
import type { AcsHubError } from '../../converters/errors.js';
import { findModel, type CatalogueEntry } from '../../zoo/catalogue.js';
import { loadCheckpoint, type ConversionManifest } from '../../zoo/store.js';
import { mayCompute, unauthorised } from '../access.js';
import { httpError, logMessage, problemHeaders, toProblem } from '../errors.js';
import { readBody } from '../http/body.js';
import { sendStoredFile, type ServedFile } from '../http/download.js';
import { param } from '../http/params.js';
import type { Services } from '../services.js';
import { modelCardFile } from './zoo.js';

/** The namespace of the repositories that are converted checkpoints. */
const CHECKPOINTS = 'checkpoints';
const CHECKPOINT_ID = /^[0-9a-f]{32}$/;
const COMMIT = /^[0-9a-f]{40}$/;

/** A repository at a revision, resolved to its conversion. */
interface RepoRevision {
  /** The repository id as answered (a catalogue id, never an alias). */
  repo: string;
  commit: string;
  checkpointId: string;
  mode: string;
  arch: string;
  manifest: ConversionManifest;
  entry?: CatalogueEntry;
}

function sha1(text: string | Buffer): string {
  return createHash('sha1').update(text).digest('hex');
}

/** The commit of a checkpoint: its id and 8 check digits (40 hex, as the Hub's commits). */
export function commitOf(checkpointId: string): string {
  return `${checkpointId}${sha1(checkpointId).slice(0, 8)}`;
}

/** The checkpoint id a commit names, if it is one of `commitOf`. */
function checkpointOfCommit(commit: string): string | undefined {
  const id = commit.slice(0, 32);
  return COMMIT.test(commit) && commitOf(id) === commit ? id : undefined;
}

/** A 404 in the Hub's words (`X-Error-Code`), with the commit when the repository is known. */
function hubNotFound(hubCode: 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound', message: string, commit?: string): AcsHubError {
  return httpError('NOT_FOUND', message, { 'X-Error-Code': hubCode, ...(commit ? { 'X-Repo-Commit': commit } : {}) });
}

/** A checkpoint's record and manifest, or undefined when there is none (a failing store still throws). */
async function findCheckpoint(s: Services, id: string): Promise<Awaited<ReturnType<typeof loadCheckpoint>> | undefined> {
  try {
    return await loadCheckpoint(s.storage, id);
  } catch (err) {
    if ((err as { code?: string }).code === 'CHECKPOINT_NOT_FOUND') return undefined;
    throw err;
  }
}

/** The mode a zoo repository's revision names, by name or by commit. */
async function modeOf(s: Services, repo: string, revision: string): Promise<Mode> {
  if (revision === 'main' || revision === 'HEAD') return 'acs';
  if ((MODES as readonly string[]).includes(revision)) return revision as Mode;
  const id = checkpointOfCommit(revision);
  const found = id === undefined ? undefined : await findCheckpoint(s, id);
  // Only a checkpoint of this very repository: nothing is converted for another one's commit.
  if (found && found.record.source['id'] === repo && (MODES as readonly string[]).includes(found.record.mode)) return found.record.mode as Mode;
  throw hubNotFound('RevisionNotFound', `repository ${repo} has no revision '${revision}' (revisions: main, ${MODES.join(', ')}, or a commit this server gave)`);
}

/** Resolve a repository and revision; undefined when the answer was a redirect (an alias). */
async function resolveRevision(s: Services, req: Request, res: Response, redirect: boolean): Promise<RepoRevision | undefined> {
  const ns = param(req, 'namespace');
  const name = param(req, 'name');
  const revision = req.params['revision'] === undefined ? 'main' : param(req, 'revision');
  if (ns === CHECKPOINTS) {
    const repo = `${CHECKPOINTS}/${name}`;
    const found = CHECKPOINT_ID.test(name) ? await findCheckpoint(s, name) : undefined;
    if (!found) throw hubNotFound('RepoNotFound', `no repository ${repo}: no converted checkpoint '${name}'`);
    const commit = commitOf(name);
    if (revision !== 'main' && revision !== 'HEAD' && revision !== commit) throw hubNotFound('RevisionNotFound', `repository ${repo} has one revision, main (commit ${commit}), not '${revision}'`);
    return { repo, commit, checkpointId: name, mode: found.record.mode, arch: found.record.arch, manifest: found.manifest };
  }
  let entry: CatalogueEntry;
  try {
    entry = findModel(s.catalogue, `${ns}/${name}`);
  } catch (err) {
    throw hubNotFound('RepoNotFound', (err as Error).message);
  }
  if (redirect && entry.id !== `${ns}/${name}`) {
    // A renamed repository on the Hub answers a relative redirect, which the clients follow.
    const [cns, cname] = entry.id.split('/');
    res.redirect(307, `/${encodeURIComponent(cns!)}/${encodeURIComponent(cname!)}/${req.path.split('/').slice(3).join('/')}`);
    return undefined;
  }
  const mode = await modeOf(s, entry.id, revision);
  // Converting computes: without a key (when keys are set) only a cached result is served.
  const compute = mayCompute(res);
  const converted = await s.hub.convert({ source: { kind: 'zoo', entry }, options: { mode }, cacheOnly: !compute }).catch((err: unknown) => {
    if (!compute && (err as { code?: string }).code === 'OFFLINE') throw unauthorised(req, `${entry.id} is not converted in mode ${mode} yet; converting it needs an API key`);
    throw err;
  });
  const commit = commitOf(converted.checkpointId);
  if (COMMIT.test(revision) && revision !== commit) throw hubNotFound('RevisionNotFound', `repository ${entry.id} has no commit '${revision}' (mode ${mode} is at ${commit})`);
  return { repo: entry.id, commit, checkpointId: converted.checkpointId, mode, arch: entry.arch, manifest: converted.manifest, entry };
}

/** A revision's files: the conversion's outputs and its model card. */
function filesOf(rev: RepoRevision): ServedFile[] {
  return [...rev.manifest.files, modelCardFile(rev.manifest)];
}

/** The LFS pointer the Hub would keep in git for a file, and its git blob id. */
function lfsPointer(f: ServedFile): { oid: string; pointerSize: number } {
  const pointer = `version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${f.size}\n`;
  const bytes = Buffer.from(pointer, 'utf8');
  return { oid: sha1(Buffer.concat([Buffer.from(`blob ${bytes.length}\0`), bytes])), pointerSize: bytes.length };
}

/** A file as the tree and paths-info endpoints list it. */
function treeEntry(rev: RepoRevision, f: ServedFile, expand: boolean): Record<string, unknown> {
  const { oid, pointerSize } = lfsPointer(f);
  return {
    type: 'file',
    oid,
    size: f.size,
    path: f.name,
    lfs: { oid: f.sha256, size: f.size, pointerSize },
    ...(expand ? { lastCommit: { id: rev.commit, title: `${rev.arch} converted in mode ${rev.mode}`, date: rev.manifest.createdAt } } : {}),
  };
}

/** The model-info document of a revision. */
function modelInfo(rev: RepoRevision, blobs: boolean): Record<string, unknown> {
  const [author] = rev.repo.split('/');
  return {
    _id: rev.checkpointId,
    id: rev.repo,
    modelId: rev.repo,
    author,
    sha: rev.commit,
    lastModified: rev.manifest.createdAt,
    createdAt: rev.manifest.createdAt,
    private: false,
    gated: false,
    disabled: false,
    downloads: 0,
    likes: 0,
    library_name: 'acs-hub',
    tags: ['acs-hub', rev.arch, `mode:${rev.mode}`, ...(rev.entry ? [rev.entry.family] : [])],
    ...(rev.entry ? { cardData: { license: rev.entry.licence } } : {}),
    siblings: filesOf(rev).map((f) => {
      if (!blobs) return { rfilename: f.name };
      const { oid, pointerSize } = lfsPointer(f);
      return { rfilename: f.name, size: f.size, blobId: oid, lfs: { sha256: f.sha256, size: f.size, pointerSize } };
    }),
  };
}

function flag(v: unknown): boolean {
  return v === true || v === 'true' || v === 'True' || v === '1';
}

/** The Hub's routes: model info, tree, paths-info, resolve and raw. */
export function hfRoutes(s: Services): Router {
  const r = Router();
  const info = async (req: Request, res: Response) => {
    const rev = await resolveRevision(s, req, res, false);
    res.json(modelInfo(rev!, flag(req.query['blobs'])));
  };
  r.get('/api/models/:namespace/:name', info);
  r.get('/api/models/:namespace/:name/revision/:revision', info);

  r.get('/api/models/:namespace/:name/tree/:revision', async (req, res) => {
    const rev = (await resolveRevision(s, req, res, false))!;
    res.json(filesOf(rev).map((f) => treeEntry(rev, f, flag(req.query['expand']))));
  });

  r.post('/api/models/:namespace/:name/paths-info/:revision', async (req, res) => {
    const rev = (await resolveRevision(s, req, res, false))!;
    const body = req.body as { paths: string[]; expand?: boolean };
    const files = filesOf(rev);
    const wanted = body.paths.map((p) => files.find((f) => f.name === p)).filter((f) => f !== undefined);
    res.json(wanted.map((f) => treeEntry(rev, f, body.expand === true)));
  });

  const file = async (req: Request, res: Response) => {
    const rev = await resolveRevision(s, req, res, true);
    if (!rev) return;
    const name = param(req, 'file');
    const files = filesOf(rev);
    const f = files.find((x) => x.name === name);
    if (!f) throw hubNotFound('EntryNotFound', `${rev.repo} at ${rev.commit} has no file '${name}' (it has ${files.map((x) => x.name).join(', ')})`, rev.commit);
    res.set({ 'X-Repo-Commit': rev.commit, 'X-Linked-Etag': `"${f.sha256}"`, 'X-Linked-Size': String(f.size) });
    await sendStoredFile(req, res, s, f, `${rev.arch}-${rev.mode}-${name}`);
  };
  r.get('/:namespace/:name/resolve/:revision/:file', file);
  r.head('/:namespace/:name/resolve/:revision/:file', file);
  r.get('/:namespace/:name/raw/:revision/:file', file);
  r.head('/:namespace/:name/raw/:revision/:file', file);
  return r;
}

/** Fields a paths-info form may have: the contract's 100 paths, `expand`, and room for a few more. */
const FORM_FIELDS = 128;
const PATHS_INFO = /^\/api\/models\/[^/]+\/[^/]+\/paths-info\/[^/]+$/;

/** A paths-info form in the shape of the JSON body, which the contract then checks (paths, expand). */
function pathsInfoForm(text: string): Record<string, unknown> {
  let fields = 1;
  for (let i = text.indexOf('&'); i >= 0; i = text.indexOf('&', i + 1)) {
    if (++fields > FORM_FIELDS) throw httpError('VALIDATION_FAILED', `the form has more than ${FORM_FIELDS} fields (at most 100 paths)`);
  }
  const form = new URLSearchParams(text);
  const body: Record<string, unknown> = {};
  if (form.has('paths')) body['paths'] = form.getAll('paths');
  const expand = form.get('expand');
  // httpx writes booleans as true/false; anything else is left for the contract to refuse.
  if (expand !== null) body['expand'] = /^(true|false)$/i.test(expand) ? expand.toLowerCase() === 'true' : expand;
  return body;
}

/**
 * `huggingface_hub` posts paths-info as a form (`paths=a&paths=b&expand=false`, one field per
 * path): read within `limit` bytes (`server.maxJsonBytes`, as the JSON body) and turned into the
 * JSON body's shape before the contract is checked, so both bodies meet the same bounds.
 */
export function hubFormBodies(limit: number): RequestHandler {
  return (req, _res, next) => {
    if (req.method !== 'POST' || !PATHS_INFO.test(req.path) || !req.is('application/x-www-form-urlencoded')) return next();
    const tooLarge = (max: number, declared?: number) => httpError('PAYLOAD_TOO_LARGE', `the form body${declared === undefined ? '' : ` of ${declared} bytes`} is over the limit of ${max} bytes (server.maxJsonBytes)`);
    readBody(req, limit, tooLarge)
      .then((bytes) => {
        req.body = pathsInfoForm(bytes.toString('utf8'));
      })
      .then(() => next(), next);
  };
}

/** Whether a path is one of the Hub's (answered in the Hub's error shape). */
export function isHubPath(path: string): boolean {
  return !/^\/v[12]\//i.test(path) && (/^\/api\/models\//i.test(path) || /\/(resolve|raw)\//i.test(path));
}

/** The Hub's `X-Error-Code` of an error on one of its paths, when it has one. */
function hubCodeOf(problem: ReturnType<typeof toProblem>, path: string): string | undefined {
  if (problem.code === 'MODEL_NOT_FOUND' || problem.code === 'CHECKPOINT_NOT_FOUND') return 'RepoNotFound';
  if (problem.code === 'VALIDATION_FAILED') {
    const at = (problem.errors ?? []).map((e) => e.path).join(' ');
    if (/params\/(namespace|name)\b/.test(at)) return 'RepoNotFound';
    if (/params\/revision\b/.test(at)) return 'RevisionNotFound';
    if (/params\/file\b/.test(at)) return 'EntryNotFound';
  }
  if (problem.code === 'NOT_FOUND') return /^\/[^/]+\/[^/]+\/(resolve|raw)\/[^/]+\/./.test(path) ? 'EntryNotFound' : 'RepoNotFound';
  return undefined;
}

/**
 * Errors on the Hub's paths, as its clients read them: the status, `X-Error-Code` and
 * `X-Error-Message` headers, and a JSON body with `error` (`application/json`, which
 * `@huggingface/hub` parses), beside the problem document's `code` and `requestId`.
 */
export function hubErrors(): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (!isHubPath(req.path)) return next(err);
    const requestId = typeof req.id === 'string' || typeof req.id === 'number' ? String(req.id) : undefined;
    const problem = toProblem(err, requestId, req.originalUrl);
    if (problem.code === 'INTERNAL') req.log?.error({ err, requestId }, 'unhandled error');
    else req.log?.info({ code: problem.code, status: problem.status, requestId }, logMessage(err, problem));
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const message = problem.detail ?? problem.title;
    const headers: Record<string, string> = { 'X-Error-Message': message.replace(/[^\x20-\x7e]/g, '?').slice(0, 500), ...problemHeaders(err) };
    const hubCode = headers['X-Error-Code'] ?? hubCodeOf(problem, req.path);
    if (hubCode) headers['X-Error-Code'] = hubCode;
    res.status(problem.status).set(headers).type('application/json').send(JSON.stringify({ error: message, ...problem }));
  };
}
