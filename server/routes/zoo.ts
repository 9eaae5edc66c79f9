/** The catalogue, and the one-line download that converts on first request. */
import { createHash } from 'node:crypto';
import { Router } from 'express';
import { MODES, type Mode } from '../../converters/convert.js';
import { findModel, listModels, loadLabels, type CatalogueEntry } from '../../zoo/catalogue.js';
import { LISTED_FILES } from '../../zoo/convert-model.js';
import type { ConversionManifest } from '../../zoo/store.js';
import { mayCompute, unauthorised } from '../access.js';
import { httpError } from '../errors.js';
import { sendStoredFile } from '../http/download.js';
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
    res.set('Content-Location', `/v1/checkpoints/${id}/files/${name}`);
    const file = name === 'card.json' ? modelCardFile(converted.manifest) : converted.manifest.files.find((f) => f.name === name);
    if (!file) throw httpError('NOT_FOUND', `checkpoint ${id} has no file '${name}'`);
    await sendStoredFile(req, res, s, file, `${entry.arch}-${mode}-${name}`);
  });
  return r;
}

/**
 * The model card (card.json) of a conversion, as a file generated from its manifest: the card
 * the converter wrote, with the list of the conversion's files (name, size, sha256).
 */
export function modelCardFile(manifest: ConversionManifest): { name: string; size: number; sha256: string; bytes: Buffer } {
  const files = manifest.files.map(({ name, size, sha256 }) => ({ name, size, sha256 }));
  const bytes = Buffer.from(`${JSON.stringify({ ...manifest.modelCard, files }, null, 2)}\n`, 'utf8');
  return { name: 'card.json', size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), bytes };
}
