// Inference on a converted checkpoint: upload a volume (NIfTI, a zip of DICOM slices, ...) to
// POST /v1/checkpoints/{id}/infer, once for the answer (JSON: top-k, features or labels) and
// once for the preview (PNG: the middle slices, with the labels overlaid for segmentation).
import { call, describeError, getJson } from './api.js';
import { field, formatBytes, h, notice, replace, select } from './ui.js';

const WINDOWS = [
  ['', 'Automatic'],
  ['none', 'None (raw intensities)'],
  ['lung', 'Lung (CT)'],
  ['mediastinum', 'Mediastinum (CT)'],
  ['abdomen', 'Abdomen (CT)'],
  ['bone', 'Bone (CT)'],
  ['brain', 'Brain (CT)'],
];

let preview;

function bodyType(name) {
  const n = name.toLowerCase();
  if (n.endsWith('.gz')) return 'application/gzip';
  if (n.endsWith('.zip')) return 'application/zip';
  if (n.endsWith('.tif') || n.endsWith('.tiff')) return 'image/tiff';
  return 'application/octet-stream';
}

function topKTable(answer) {
  if (answer.kind === 'classification') {
    return h('table', { class: 'topk' },
      h('caption', { class: 'sr-only' }, `Top ${answer.topK.length} classes`),
      h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Class'), h('th', { scope: 'col', class: 'num' }, 'Probability'), h('th', { scope: 'col', class: 'num' }, 'Logit'))),
      h('tbody', {}, answer.topK.map((k) =>
        h('tr', {},
          h('th', { scope: 'row' }, k.label ?? `class ${k.index}`, h('span', { class: 'sub' }, ` #${k.index}`)),
          h('td', { class: 'num prob' }, h('span', { class: 'bar', style: `--p:${(k.probability * 100).toFixed(1)}%`, 'aria-hidden': 'true' }), `${(k.probability * 100).toFixed(1)} %`),
          h('td', { class: 'num' }, k.logit.toFixed(3))))));
  }
  if (answer.kind === 'segmentation') {
    return h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Label volume'), h('dd', {}, (answer.labels?.shape ?? []).join(' × '))),
      h('div', {}, h('dt', {}, 'Classes present'), h('dd', {}, (answer.labels?.classes ?? []).join(', ') || 'none')));
  }
  const f = answer.features ?? [];
  return h('dl', { class: 'facts' },
    h('div', {}, h('dt', {}, 'Features'), h('dd', {}, `${f.length} values`)),
    h('div', {}, h('dt', {}, 'First values'), h('dd', {}, h('code', {}, f.slice(0, 8).map((v) => v.toFixed(4)).join(', ')))));
}

/** The inference view; `query` may name a checkpoint. */
export async function inferView(root, query) {
  const { checkpoints } = await getJson('/v1/checkpoints').catch(() => ({ checkpoints: [] }));
  const wanted = query.get('checkpoint');
  const choices = checkpoints.map((c) => [c.id, `${c.arch} · ${c.mode} · ${c.id.slice(0, 8)}`]);
  if (wanted && !checkpoints.some((c) => c.id === wanted)) choices.unshift([wanted, wanted]);
  const checkpoint = choices.length ? select(choices, { name: 'checkpoint', required: true }) : h('input', { name: 'checkpoint', required: true, pattern: '[0-9a-f]{32}', placeholder: 'a checkpoint id' });
  if (wanted) checkpoint.value = wanted;
  const file = h('input', { type: 'file', name: 'volume', required: true, accept: '.nii,.nii.gz,.gz,.zip,.npy,.tif,.tiff' });
  const topK = h('input', { type: 'number', name: 'topK', min: 1, max: 50, value: 5, inputmode: 'numeric' });
  const intensity = select(WINDOWS, { name: 'window' });
  const size = h('input', { name: 'size', placeholder: 'as stored', pattern: '[0-9]{1,4},[0-9]{1,4},[0-9]{1,4}', autocomplete: 'off' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Run inference');
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' }, choices.length ? 'Choose a volume.' : 'No converted checkpoint yet: convert a model first.');
  const output = h('div', { class: 'infer-output' });
  const form = h('form', { class: 'panel', 'aria-labelledby': 'infer-h' },
    h('h2', { id: 'infer-h' }, 'Volume'),
    field('Checkpoint', checkpoint),
    field('Volume file', file, 'NIfTI (.nii, .nii.gz), a zip of DICOM or PNG slices, NumPy .npy, or a multi-page TIFF.'),
    h('div', { class: 'row' }, field('Top classes', topK), field('Intensity window', intensity)),
    field('Resample to D,H,W', size, 'Optional, e.g. 64,64,64.'),
    h('div', { class: 'form-actions' }, submit),
    status);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const f = file.files[0];
    if (!f) return;
    submit.disabled = true;
    replace(output);
    const params = new URLSearchParams({ topK: topK.value || '5' });
    if (intensity.value) params.set('window', intensity.value);
    if (size.value) params.set('size', size.value);
    const url = `/v1/checkpoints/${checkpoint.value}/infer?${params}`;
    try {
      status.textContent = `Running ${f.name} (${formatBytes(f.size)})…`;
      const answer = await getJson(url, { method: 'POST', body: f, type: bodyType(f.name) });
      status.textContent = 'Rendering the preview…';
      const png = await (await call(url, { method: 'POST', body: f, type: bodyType(f.name), accept: 'image/png' })).blob();
      if (preview) URL.revokeObjectURL(preview);
      preview = URL.createObjectURL(png);
      const what = answer.kind === 'segmentation' ? 'Middle slices with the predicted labels overlaid' : 'Middle slices of the network input';
      replace(output,
        h('section', { class: 'panel', 'aria-labelledby': 'preview-h' }, h('h2', { id: 'preview-h' }, 'Preview'),
          h('figure', {}, h('img', { src: preview, alt: `${what} (axial, coronal, sagittal)`, class: 'preview' }), h('figcaption', {}, `${what}.`))),
        h('section', { class: 'panel', 'aria-labelledby': 'answer-h' }, h('h2', { id: 'answer-h' }, answer.kind === 'classification' ? 'Top classes' : 'Answer'),
          topKTable(answer),
          h('p', { class: 'hint' }, `Input ${(answer.input?.shape ?? []).join(' × ')}${answer.device ? ` on ${answer.device}` : ''}${answer.ms ? ` · ${Math.round((answer.ms.preprocess ?? 0) + (answer.ms.network ?? 0))} ms` : ''}`),
          answer.preprocessing?.length ? h('details', {}, h('summary', {}, 'Preprocessing'), h('ul', {}, answer.preprocessing.map((p) => h('li', {}, p)))) : undefined));
      status.textContent = `Done: ${answer.kind}.`;
    } catch (err) {
      status.textContent = 'Failed.';
      replace(output, notice('error', describeError(err)));
    } finally {
      submit.disabled = false;
    }
  });

  replace(
    root,
    h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, 'Run inference'), h('p', { class: 'lead' }, 'Send a 3D volume through a converted network and see what it answers.')),
    h('div', { class: 'two-col infer' }, form, output),
  );
}
