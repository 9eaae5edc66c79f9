/** `acs-hub zoo [list | show <id>]`: the catalogue of public pretrained models. */
import { findModel, listModels, loadLabels, type CatalogueEntry } from '../zoo/catalogue.js';
import { parse, UsageError } from './args.js';
import { cliCatalogue, cliConfig, STORE_OPTIONS } from './context.js';

const USAGE = 'acs-hub zoo [list [--family F] [--licence L] [--source S] | show <id>] [--json]';

function mb(bytes: number | undefined): string {
  return bytes === undefined ? '' : `${(bytes / 1e6).toFixed(1)} MB`;
}

function describe(m: CatalogueEntry): string {
  const p = m.preprocessing;
  const lines = [
    `${m.id}${m.aliases?.length ? ` (also ${m.aliases.join(', ')})` : ''}`,
    `  title          ${m.title}`,
    `  family / arch  ${m.family} / ${m.arch}`,
    `  source         ${m.source.type}: ${m.url}`,
    `  format         ${m.format}${m.size ? `, ${mb(m.size)}` : ''}`,
    `  sha256         ${m.sha256 ?? (m.source.type === 'torchvision' ? 'prefix in the file name' : m.source.type === 'huggingface' ? "the Hub's X-Linked-Etag" : 'not published')}`,
    `  licence        ${m.licence}${m.licenceNote ? ` (${m.licenceNote})` : ''}`,
    `  input          ${p.inChannels} x ${p.inputSize} x ${p.inputSize}${p.resizeSize ? `, resize ${p.resizeSize}` : ''}${p.cropPct ? `, crop ${p.cropPct}` : ''}${p.interpolation ? `, ${p.interpolation}` : ''}`,
    `  mean / std     [${p.mean.join(', ')}] / [${p.std.join(', ')}]`,
    `  labels         ${typeof m.labels === 'string' ? m.labels : `${m.labels.length} classes`}`,
  ];
  if (m.params) lines.push(`  parameters     ${m.params.toLocaleString('en-US')}`);
  const acc = m.metrics?.['imagenet-1k'];
  if (acc) lines.push(`  imagenet-1k    acc@1 ${acc['acc@1']}, acc@5 ${acc['acc@5']}`);
  const voc = m.metrics?.['coco-val2017-voc-labels'];
  if (voc) lines.push(`  coco-voc       mIoU ${voc['miou']}, pixel acc ${voc['pixel_acc']} (COCO val2017, VOC labels)`);
  if (m.task === 'segmentation') lines.push('  task           segmentation (per-voxel logits once converted)');
  if (m.domain) lines.push(`  domain         ${m.domain}`);
  if (m.note) lines.push(`  note           ${m.note}`);
  return lines.join('\n');
}

/** Run the subcommand. */
export async function runZoo(argv: string[]): Promise<void> {
  const { values, positionals } = parse(
    argv,
    { json: { type: 'boolean' }, family: { type: 'string' }, licence: { type: 'string' }, source: { type: 'string' }, ...STORE_OPTIONS },
    USAGE,
  );
  if (values.help) {
    process.stdout.write(`Usage: ${USAGE}\n\nList the zoo's models (filtered by family, licence or source), or show one.\n`);
    return;
  }
  const [action = 'list', ...rest] = positionals;
  const catalogue = await cliCatalogue(cliConfig(values));
  if (action === 'list') {
    if (rest.length) throw new UsageError(`'zoo list' takes no arguments (usage: ${USAGE})`);
    const models = listModels(catalogue, {
      family: typeof values.family === 'string' ? values.family : undefined,
      licence: typeof values.licence === 'string' ? values.licence : undefined,
      source: typeof values.source === 'string' ? values.source : undefined,
    });
    if (values.json) {
      process.stdout.write(`${JSON.stringify(models, null, 2)}\n`);
      return;
    }
    const width = models.reduce((w, m) => Math.max(w, m.id.length), 2);
    const lines = models.map((m) => `${m.id.padEnd(width)}  ${m.arch.padEnd(18)}  ${m.licence.padEnd(12)}  ${m.source.type}`);
    process.stdout.write(`${[`${'id'.padEnd(width)}  ${'arch'.padEnd(18)}  ${'licence'.padEnd(12)}  source`, ...lines].join('\n')}\n${models.length} models\n`);
    return;
  }
  if (action === 'show') {
    if (rest.length !== 1) throw new UsageError(`expected one model id (usage: ${USAGE})`);
    const entry = findModel(catalogue, rest[0]!);
    if (values.json) {
      process.stdout.write(`${JSON.stringify({ ...entry, labels: await loadLabels(entry) }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`${describe(entry)}\n`);
    return;
  }
  throw new UsageError(`unknown zoo action '${action}' (usage: ${USAGE})`);
}
