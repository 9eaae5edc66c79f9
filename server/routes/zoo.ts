/** The catalogue, and the one-line download that converts on first request. */
import { createHash } from 'node:crypto';
import { Router, type Response } from 'express';
import { MODES, type Mode } from '../../converters/convert.js';
import { findModel, listModels, loadLabels, type CatalogueEntry } from '../../zoo/catalogue.js';
import { LISTED_FILES } from '../../zoo/convert-model.js';
import { parseSpecializeSize } from '../../converters/specialize-file.js';
import { getSpecializedOnnx } from '../../zoo/specialized-onnx.js';
import { conversionPrefixOf, readSpecializedOnnx, type ConversionManifest, type SpecializedOnnxRecord } from '../../zoo/store.js';
import { mayCompute, unauthorised } from '../access.js';
import { httpError } from '../errors.js';
import { sendStoredFile, type ServedFile } from '../http/download.js';
import type { Services } from '../services.js';

function summary(m: CatalogueEntry): Record<string, unknown> {
  return {
    id: m.id,
    aliases: m.aliases ?? [],
    family: m.family,
    arch: m.arch,
    task: m.task ?? 'classification',
    title: m.title,
    source: m.source.type,
    url: m.url,
    licence: m.licence,
    ...(m.domain ? { domain: m.domain } : {}),
    ...(m.params ? { params: m.params } : {}),
  };
}

/** Routes under /v1/zoo. */
export function zooRoutes(s: Services): Router {
  const r = Router();
  r.get('/v1/zoo', (req, res) => {
    const q = typeof req.query['q'] === 'string' ? req.query['q'].toLowerCase() : undefined;
    const models = listModels(s.catalogue, {
      family: typeof req.query['family'] === 'string' ? req.query['family'] : undefined,
      licence: typeof req.query['licence'] === 'string' ? req.query['licence'] : undefined,
      source: typeof req.query['source'] === 'string' ? (req.query['source'] as 'torchvision') : undefined,
    }).filter((m) => !q || [m.id, m.title, m.arch, m.family, ...(m.aliases ?? [])].some((t) => t.toLowerCase().includes(q)));
    res.json({ models: models.map(summary) });
  });

  r.get('/v1/zoo/:namespace/:name', async (req, res) => {
    const m = findModel(s.catalogue, `${req.params['namespace']}/${req.params['name']}`);
    const base = `/v1/zoo/${m.id}`;
    const downloads = Object.fromEntries(MODES.map((mode) => [mode, Object.fromEntries(LISTED_FILES.map((f) => [f, `${base}/${mode}/${f}`]))]));
    res.json({
      ...summary(m),
      format: m.format,
      ...(m.sha256 ? { sha256: m.sha256 } : {}),
      ...(m.size ? { size: m.size } : {}),
      ...(m.licenceNote ? { licenceNote: m.licenceNote } : {}),
      ...(m.metrics ? { metrics: m.metrics } : {}),
      preprocessing: m.preprocessing,
      labels: await loadLabels(m),
      downloads,
    });
  });

  r.get('/v1/zoo/:namespace/:name/:mode/:file', async (req, res) => {
    const entry = findModel(s.catalogue, `${req.params['namespace']}/${req.params['name']}`);
    const mode = req.params['mode'] as Mode;
    // Converting computes: without a key (when keys are set) only a cached result is served.
    const compute = mayCompute(res);
    const converted = await s.hub.convert({ source: { kind: 'zoo', entry }, options: { mode }, cacheOnly: !compute }).catch((err: unknown) => {
      if (!compute && (err as { code?: string }).code === 'OFFLINE') throw unauthorised(req, 'this model is not converted yet; converting it needs an API key');
      throw err;
    });
    const id = converted.checkpointId;
    const name = req.params['file']!;
    const size = req.query['size'];
    res.set('Content-Location', `/v1/checkpoints/${id}/files/${name}${size === undefined ? '' : `?size=${encodeURIComponent(String(size))}`}`);
    const served = await servedFile(s, res, converted.manifest, name, size);
    if (!served) throw httpError('NOT_FOUND', `checkpoint ${id} has no file '${name}'`);
    await sendStoredFile(req, res, s, served.file, `${entry.arch}-${mode}-${served.tag}${name}`);
  });
  return r;
}

/**
 * The model card (card.json) of a conversion, as a file generated from its manifest: the card
 * the converter wrote, with the list of the conversion's files (name, size, sha256); with
 * `onnx`, the card of its model.onnx specialised for one size (`onnx.specializedFor`).
 */
export function modelCardFile(manifest: ConversionManifest, onnx?: SpecializedOnnxRecord): { name: string; size: number; sha256: string; bytes: Buffer } {
  const files = manifest.files.map(({ name, size, sha256 }) => ({ name, size, sha256 }));
  const card = onnx ? { ...manifest.modelCard, files, onnx: { specializedFor: onnx.specializedFor, sha256: onnx.sha256, size: onnx.size, note: onnx.note } } : { ...manifest.modelCard, files };
  const bytes = Buffer.from(`${JSON.stringify(card, null, 2)}\n`, 'utf8');
  return { name: 'card.json', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
}

/**
 * The file a download serves: a stored output, the card, or (with `?size=D,H,W`, for model.onnx
 * and card.json) the model specialised for that size, made on first request when this request
 * may compute; undefined for a name the conversion does not have. `tag` goes into the name.
 */
export async function servedFile(s: Services, res: Response, manifest: ConversionManifest, name: string, sizeParam: unknown): Promise<{ file: ServedFile; tag: string } | undefined> {
  if (sizeParam === undefined) {
    const file = name === 'card.json' ? modelCardFile(manifest) : manifest.files.find((f) => f.name === name);
    return file && { file, tag: '' };
  }
  if (typeof sizeParam !== 'string') throw httpError('INVALID_ARGUMENT', "'size' must be given once, as D,H,W");
  if (name !== 'model.onnx' && name !== 'card.json') throw httpError('INVALID_ARGUMENT', `'size' applies to model.onnx and card.json, not '${name}'`);
  const channels = Number((manifest.modelCard['input'] as { channels?: number } | undefined)?.channels ?? 3);
  const size = parseSpecializeSize(sizeParam, channels, s.cfg.budgets);
  const onnx = manifest.files.find((f) => f.name === 'model.onnx');
  if (!onnx) return undefined;
  const prefix = conversionPrefixOf(onnx.key);
  const kept = prefix ? await readSpecializedOnnx(s.storage, prefix, size) : undefined;
  if (!kept && !mayCompute(res)) throw unauthorised(res.req, 'specialising model.onnx for a size computes; it needs an API key');
  const record = kept ?? (await getSpecializedOnnx({ storage: s.storage, fence: s.fence, manifest, size }));
  return { file: name === 'card.json' ? modelCardFile(manifest, record) : record, tag: `${size.join('x')}-` };
}
