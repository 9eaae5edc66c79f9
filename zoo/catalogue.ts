/**
 * The zoo catalogue: a JSON data file of public pretrained models (zoo/catalogue.json), loaded,
 * validated against the schema below, and queried by id, alias, family or licence.
 */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isKnownArchitecture, type Architecture } from './architectures.js';
import { CatalogueError, ModelNotFoundError } from './errors.js';

/** The catalogue shipped with the project. */
export const DEFAULT_CATALOGUE_PATH = fileURLToPath(new URL('../../zoo/catalogue.json', import.meta.url));

/** A file served by torchvision: `{torchvision base}/{file}`; the name embeds a sha256 prefix. */
export interface TorchvisionSource {
  readonly type: 'torchvision';
  readonly file: string;
}

/** A file in a Hugging Face Hub repository: `{endpoint}/{repo}/resolve/{revision}/{file}`. */
export interface HuggingFaceSource {
  readonly type: 'huggingface';
  readonly repo: string;
  /** A commit sha (pinned) or a branch/tag name. */
  readonly revision: string;
  readonly file: string;
  /** The repository is gated: a token is required. */
  readonly gated?: boolean;
}

/** A GitHub release asset: `{github base}/{repo}/releases/download/{tag}/{file}`. */
export interface GitHubReleaseSource {
  readonly type: 'github';
  readonly repo: string;
  readonly tag: string;
  readonly file: string;
}

/** Where an entry's file lives. */
/** Any http(s) URL (a user's own source; not used by the shipped catalogue). */
export interface UrlSource {
  readonly type: 'url';
  readonly url: string;
}

export type ModelSource = TorchvisionSource | HuggingFaceSource | GitHubReleaseSource | UrlSource;

/** What fetching needs of an entry: its id, where it lives and what its bytes must be. */
export type PullableEntry = Pick<CatalogueEntry, 'id' | 'source' | 'sha256' | 'size'>;

/** How inputs were prepared when the weights were trained (for the 2D parent). */
export interface Preprocessing {
  readonly inChannels: number;
  /** Side of the square input (the centre crop). */
  readonly inputSize: number;
  /** Side the shorter edge is resized to before the crop, when the recipe says so. */
  readonly resizeSize?: number;
  /** timm's crop fraction (`resize = inputSize / cropPct`), when the recipe says so. */
  readonly cropPct?: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly interpolation?: 'bilinear' | 'bicubic' | 'nearest';
}

/** One model of the catalogue. */
export interface CatalogueEntry {
  /** Stable id, `source-family/name[.tag]`, e.g. `torchvision/resnet50.imagenet1k_v2`. */
  readonly id: string;
  /** Other ids that resolve to this entry (e.g. `torchvision/resnet50` for the default weights). */
  readonly aliases?: readonly string[];
  readonly family: string;
  /** Architecture id for the builder (`KNOWN_ARCHITECTURES`). */
  readonly arch: Architecture;
  /** What the network answers: class logits (N, K), or per-pixel logits (N, K, H, W). @default 'classification' */
  readonly task?: 'classification' | 'segmentation';
  readonly title: string;
  readonly source: ModelSource;
  /** The exact public location, with the default base URL of its source. */
  readonly url: string;
  readonly format: 'pth' | 'safetensors';
  /** Full sha256 of the file, where published. */
  readonly sha256?: string;
  /** Size in bytes, where published. */
  readonly size?: number;
  /** SPDX id of the licence. */
  readonly licence: string;
  readonly licenceNote?: string;
  /** `radiology` for weights pretrained on medical images; natural images otherwise. */
  readonly domain?: string;
  readonly params?: number;
  readonly metrics?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly preprocessing: Preprocessing;
  /** A label set shipped under zoo/labels (by name), or the class names themselves. */
  readonly labels: string | readonly string[];
  readonly recipe?: string;
  readonly note?: string;
}

/** A loaded, validated catalogue. */
export interface Catalogue {
  /** The file it was read from. */
  readonly path: string;
  readonly models: readonly CatalogueEntry[];
}

/** Filters of `listModels`. */
export interface ModelFilter {
  /** Only this family (`resnet`, `densenet`, ...). */
  family?: string;
  /** Only this licence (SPDX id, case-insensitive). */
  licence?: string;
  /** Only this source type (`torchvision`, `huggingface`, `github`). */
  source?: string;
}

const ID = /^[a-z0-9][a-z0-9_-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SHA256 = /^[0-9a-f]{64}$/;
const FILE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REPO = /^[A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*$/;
const REVISION = /^[A-Za-z0-9][A-Za-z0-9._/-]*$/;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

class Checker {
  constructor(readonly where: string) {}
  fail(field: string, what: string): never {
    throw new CatalogueError(`${this.where}: '${field}' ${what}`);
  }
  string(o: Json, field: string, pattern?: RegExp): string {
    const v = o[field];
    if (typeof v !== 'string' || v.length === 0) this.fail(field, `must be a non-empty string, got ${JSON.stringify(v)}`);
    if (pattern && !pattern.test(v)) this.fail(field, `must match ${String(pattern)}, got '${v}'`);
    return v;
  }
  optString(o: Json, field: string, pattern?: RegExp): void {
    if (o[field] !== undefined) this.string(o, field, pattern);
  }
  number(o: Json, field: string, opts: { integer?: boolean; min?: number; exclusiveMin?: boolean } = {}): number {
    const v = o[field];
    const min = opts.min ?? -Infinity;
    if (typeof v !== 'number' || !Number.isFinite(v) || (opts.integer && !Number.isInteger(v)) || v < min || (opts.exclusiveMin && v === min)) {
      this.fail(field, `must be a ${opts.integer ? 'integer' : 'number'} ${opts.exclusiveMin ? '>' : '>='} ${min}, got ${JSON.stringify(v)}`);
    }
    return v;
  }
  optNumber(o: Json, field: string, opts: { integer?: boolean; min?: number; exclusiveMin?: boolean } = {}): void {
    if (o[field] !== undefined) this.number(o, field, opts);
  }
  numbers(o: Json, field: string, length: number, positive: boolean): void {
    const v = o[field];
    if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number' && Number.isFinite(x) && (!positive || x > 0))) {
      this.fail(field, `must be ${length} ${positive ? 'positive ' : ''}numbers (one per input channel), got ${JSON.stringify(v)}`);
    }
  }
}

function checkSource(c: Checker, o: Json): void {
  const s = o['source'];
  if (!isObject(s)) c.fail('source', 'must be an object');
  const sc = new Checker(`${c.where}: source`);
  const type = sc.string(s, 'type');
  switch (type) {
    case 'torchvision':
      sc.string(s, 'file', FILE);
      break;
    case 'huggingface':
      sc.string(s, 'repo', REPO);
      sc.string(s, 'revision', REVISION);
      sc.string(s, 'file', /^[A-Za-z0-9][A-Za-z0-9._/-]*$/);
      if (s['gated'] !== undefined && typeof s['gated'] !== 'boolean') sc.fail('gated', 'must be a boolean');
      break;
    case 'github':
      sc.string(s, 'repo', REPO);
      sc.string(s, 'tag', REVISION);
      sc.string(s, 'file', FILE);
      break;
    default:
      sc.fail('type', `must be one of torchvision, huggingface, github, got '${type}'`);
  }
}

function checkPreprocessing(c: Checker, o: Json): void {
  const p = o['preprocessing'];
  if (!isObject(p)) c.fail('preprocessing', 'must be an object');
  const pc = new Checker(`${c.where}: preprocessing`);
  const channels = pc.number(p, 'inChannels', { integer: true, min: 1 });
  pc.number(p, 'inputSize', { integer: true, min: 1 });
  pc.optNumber(p, 'resizeSize', { integer: true, min: 1 });
  pc.optNumber(p, 'cropPct', { min: 0, exclusiveMin: true });
  pc.numbers(p, 'mean', channels, false);
  pc.numbers(p, 'std', channels, true);
  const interp = p['interpolation'];
  if (interp !== undefined && interp !== 'bilinear' && interp !== 'bicubic' && interp !== 'nearest') {
    pc.fail('interpolation', `must be bilinear, bicubic or nearest, got ${JSON.stringify(interp)}`);
  }
}

function checkEntry(raw: unknown, index: number, labelSets: ReadonlySet<string>): CatalogueEntry {
  if (!isObject(raw)) throw new CatalogueError(`models[${index}]: must be an object`);
  const id = typeof raw['id'] === 'string' ? raw['id'] : `models[${index}]`;
  const c = new Checker(`catalogue entry '${id}'`);
  c.string(raw, 'id', ID);
  const aliases = raw['aliases'];
  if (aliases !== undefined && (!Array.isArray(aliases) || !aliases.every((a) => typeof a === 'string' && ID.test(a)))) {
    c.fail('aliases', `must be a list of ids matching ${String(ID)}`);
  }
  c.string(raw, 'family', /^[a-z0-9_]+$/);
  const arch = c.string(raw, 'arch');
  if (!isKnownArchitecture(arch)) c.fail('arch', `'${arch}' is not one of KNOWN_ARCHITECTURES`);
  const task = raw['task'];
  if (task !== undefined && task !== 'classification' && task !== 'segmentation') c.fail('task', `must be classification or segmentation, got ${JSON.stringify(task)}`);
  c.string(raw, 'title');
  checkSource(c, raw);
  c.string(raw, 'url', /^https:\/\/\S+$/);
  const format = c.string(raw, 'format');
  if (format !== 'pth' && format !== 'safetensors') c.fail('format', `must be pth or safetensors, got '${format}'`);
  c.optString(raw, 'sha256', SHA256);
  c.optNumber(raw, 'size', { integer: true, min: 1 });
  c.string(raw, 'licence');
  c.optString(raw, 'licenceNote');
  c.optString(raw, 'domain', /^[a-z]+$/);
  c.optNumber(raw, 'params', { integer: true, min: 1 });
  if (raw['metrics'] !== undefined && !isObject(raw['metrics'])) c.fail('metrics', 'must be an object');
  checkPreprocessing(c, raw);
  const labels = raw['labels'];
  if (typeof labels === 'string') {
    if (!labelSets.has(labels)) c.fail('labels', `names an unknown label set '${labels}' (known: ${[...labelSets].join(', ')})`);
  } else if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string')) {
    c.fail('labels', 'must name a label set or list the class names');
  }
  c.optString(raw, 'recipe');
  c.optString(raw, 'note');
  return raw as unknown as CatalogueEntry;
}

/** The label sets shipped under zoo/labels. */
export const LABEL_SETS: ReadonlySet<string> = new Set(['imagenet-1k', 'coco-voc-21']);

/**
 * Validate a parsed catalogue document: every entry against the schema, ids and aliases unique.
 * Throws a `CatalogueError` naming the entry and the field.
 */
export function validateCatalogue(doc: unknown, params: { path?: string } = {}): Catalogue {
  const path = params.path ?? '<memory>';
  if (!isObject(doc) || doc['version'] !== 1 || !Array.isArray(doc['models'])) {
    throw new CatalogueError(`${path}: expected {"version": 1, "models": [...]}`);
  }
  const models = doc['models'].map((m, i) => checkEntry(m, i, LABEL_SETS));
  const seen = new Set<string>();
  for (const m of models) {
    for (const name of [m.id, ...(m.aliases ?? [])]) {
      if (seen.has(name)) throw new CatalogueError(`${path}: id or alias '${name}' appears twice`);
      seen.add(name);
    }
  }
  return { path, models };
}

/**
 * Load and validate a catalogue file.
 * @param params.path - the catalogue file. @default the shipped zoo/catalogue.json
 */
export async function loadCatalogue(params: { path?: string } = {}): Promise<Catalogue> {
  const path = params.path ?? DEFAULT_CATALOGUE_PATH;
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CatalogueError(`cannot read catalogue ${path}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new CatalogueError(`${path}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return validateCatalogue(doc, { path });
}

/** The entry with this id or alias; a `ModelNotFoundError` listing close matches otherwise. */
export function findModel(catalogue: Catalogue, id: string): CatalogueEntry {
  const found = catalogue.models.find((m) => m.id === id || (m.aliases ?? []).includes(id));
  if (found) return found;
  const name = (id.toLowerCase().split('/').pop() ?? id).split('.')[0]!;
  const stem = name.replace(/\d.*$/, '');
  const near = [...catalogue.models.filter((m) => m.arch.includes(name)), ...catalogue.models.filter((m) => stem.length >= 3 && m.arch.startsWith(stem))]
    .map((m) => m.aliases?.[0] ?? m.id)
    .filter((v, i, all) => all.indexOf(v) === i)
    .slice(0, 5);
  throw new ModelNotFoundError(`unknown zoo model '${id}'${near.length ? ` (did you mean ${near.join(', ')}?)` : ` (try 'acs-hub zoo list')`}`);
}

/** The entries matching every given filter, in catalogue order. */
export function listModels(catalogue: Catalogue, filter: ModelFilter = {}): CatalogueEntry[] {
  return catalogue.models.filter(
    (m) =>
      (filter.family === undefined || m.family === filter.family) &&
      (filter.licence === undefined || m.licence.toLowerCase() === filter.licence.toLowerCase()) &&
      (filter.source === undefined || m.source.type === filter.source),
  );
}

/** The class names of an entry: its own list, or the shipped label set it names. */
export async function loadLabels(entry: CatalogueEntry): Promise<string[]> {
  if (typeof entry.labels !== 'string') return [...entry.labels];
  let names = labelFiles.get(entry.labels);
  if (names === undefined) {
    const file = join(dirname(DEFAULT_CATALOGUE_PATH), 'labels', `${entry.labels}.json`);
    const parsed = JSON.parse(await readFile(file, 'utf8')) as unknown;
    if (!Array.isArray(parsed) || !parsed.every((n) => typeof n === 'string')) throw new CatalogueError(`${file}: not a list of class names`);
    names = parsed as string[];
    labelFiles.set(entry.labels, names);
  }
  return [...names];
}

/** Label files read so far (they ship with the package and do not change). */
const labelFiles = new Map<string, string[]>();
