// The conversion form: a catalogue id or an upload (POST /v1/uploads, its bytes counted as they
// go out), a mode and options, then POST /v1/conversions and its progress from
// GET /v1/conversions/{id}/events.
import { call, describeError, events, getJson, upload } from './api.js';
import { loadCatalogue, MODE_OPTIONS } from './catalogue.js';
import { downloadsPanel } from './downloads.js';
import { field, formatBytes, h, notice, replace, select, uid } from './ui.js';

const PHASES = ['queued', 'downloading', 'converting', 'storing', 'done'];
let running;

function uploadName(file) {
  return file.name.replace(/[^A-Za-z0-9._-]/g, '_').slice(-200) || 'upload';
}

function radio(name, value, label, checked) {
  const input = h('input', { type: 'radio', name, value, id: uid('r'), checked });
  return h('label', { class: 'choice', for: input.id }, input, label);
}

/** The conversion view; `query` may name a zoo id to convert. */
export async function convertView(root, query) {
  const models = await loadCatalogue().catch(() => []);
  const zoo = h('input', { name: 'zoo', list: 'zoo-ids', placeholder: 'torchvision/resnet18', autocomplete: 'off', spellcheck: 'false', value: query.get('zoo') ?? '' });
  const ids = h('datalist', { id: 'zoo-ids' }, models.flatMap((m) => [m.id, ...(m.aliases ?? [])]).map((id) => h('option', { value: id })));
  const file = h('input', { type: 'file', name: 'file', accept: '.pth,.pt,.bin,.safetensors,.onnx' });
  const mode = select(MODE_OPTIONS, { name: 'mode' });
  const inChannels = h('input', { type: 'number', name: 'inChannels', min: 1, max: 1024, placeholder: 'as trained (3)', inputmode: 'numeric' });
  const head = select([['keep', 'Keep the classifier'], ['features', 'End at pooled features'], ['new', 'New head of N classes']], { name: 'head' });
  const classes = h('input', { type: 'number', name: 'classes', min: 1, max: 100000, value: 2, inputmode: 'numeric' });
  const classesField = field('Classes of the new head', classes);
  const axis = select([['d', 'd (depth)'], ['h', 'h (height)'], ['w', 'w (width)']], { name: 'axis' });
  const axisField = field('Axis', axis, 'The unit axis of 2.5d, the repeat axis of i3d.');
  const sourceZoo = radio('source', 'zoo', 'A catalogue model', !query.get('upload'));
  const sourceUpload = radio('source', 'upload', 'My own file (.pth, .safetensors, .onnx)', false);
  const zooField = field('Catalogue id', zoo, 'An id or alias from the catalogue.');
  const fileField = field('Checkpoint file', file, 'A 2D checkpoint: PyTorch .pth, .safetensors or a 2D .onnx graph. It is checked before it is stored.');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Convert');
  const cancel = h('button', { type: 'button', class: 'ghost', hidden: true }, 'Cancel');
  const uploadBar = h('progress', { max: 1, value: 0, id: uid('upload') });
  const uploadBytes = h('span', { class: 'upload-bytes' });
  const uploadRow = h('div', { class: 'upload-progress', hidden: true }, h('label', { for: uploadBar.id }, 'Upload'), uploadBar, uploadBytes);
  const bar = h('progress', { max: 1, value: 0, 'aria-label': 'Conversion progress' });
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' }, 'Not started.');
  const steps = h('ol', { class: 'steps', 'aria-label': 'Phases' }, PHASES.map((p) => h('li', { 'data-phase': p }, p)));
  const result = h('div', { class: 'result' });
  const progress = h('section', { class: 'panel progress-panel', 'aria-labelledby': 'progress-h' }, h('h2', { id: 'progress-h' }, 'Progress'), uploadRow, steps, bar, status, result);

  const sync = () => {
    const upload = sourceUpload.querySelector('input').checked;
    zooField.hidden = upload;
    fileField.hidden = !upload;
    zoo.required = !upload;
    file.required = upload;
    classesField.hidden = head.value !== 'new';
    axisField.hidden = !['2.5d', 'i3d'].includes(mode.value);
  };
  const form = h('form', { class: 'panel convert-form', 'aria-labelledby': 'convert-h', novalidate: false },
    h('h2', { id: 'convert-h' }, 'What to convert'),
    h('fieldset', {}, h('legend', {}, 'Source'), h('div', { class: 'choices' }, sourceZoo, sourceUpload), zooField, fileField),
    h('fieldset', {}, h('legend', {}, 'Conversion'), field('Mode', mode), axisField,
      field('Input channels', inChannels, 'Adapt the RGB stem, e.g. 1 for CT or MRI. Empty keeps it.'), field('Head', head), classesField),
    h('div', { class: 'form-actions' }, submit, cancel));
  form.addEventListener('change', sync);
  sync();

  const setPhase = (phase) => {
    const at = PHASES.indexOf(phase);
    for (const li of steps.children) {
      const i = PHASES.indexOf(li.dataset.phase);
      li.className = i < at || phase === 'done' ? 'done' : i === at ? 'current' : '';
      if (i === at) li.setAttribute('aria-current', 'step');
      else li.removeAttribute('aria-current');
    }
  };
  const say = (text) => (status.textContent = text);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    running?.abort();
    const controller = new AbortController();
    running = controller;
    const signal = controller.signal;
    submit.disabled = true;
    replace(result);
    uploadRow.hidden = true;
    setPhase('queued');
    bar.value = 0;
    bar.removeAttribute('value');
    let jobId;
    try {
      let source;
      if (sourceUpload.querySelector('input').checked) {
        const f = file.files[0];
        if (!f) throw new Error('Choose a checkpoint file to upload.');
        say(`Uploading ${f.name} (${formatBytes(f.size)})…`);
        uploadBar.max = Math.max(f.size, 1);
        uploadBar.value = 0;
        uploadBytes.textContent = `0 B of ${formatBytes(f.size)} sent`;
        uploadRow.hidden = false;
        // The bar and the byte count follow every event; the live region speaks every tenth.
        let spoken = 0;
        const onProgress = (sent, total) => {
          const percent = total ? Math.floor((100 * sent) / total) : 100;
          uploadBar.max = Math.max(total, 1);
          uploadBar.value = sent;
          uploadBytes.textContent = `${formatBytes(sent)} of ${formatBytes(total)} sent (${percent}%)`;
          if (Math.floor(percent / 10) > Math.floor(spoken / 10)) {
            spoken = percent;
            say(`Uploading ${f.name}: ${formatBytes(sent)} of ${formatBytes(total)} sent (${percent}%)…`);
          }
        };
        const up = await upload(`/v1/uploads?filename=${encodeURIComponent(uploadName(f))}`, f, { onProgress, signal });
        say(`Uploaded ${up.filename ?? f.name}: ${up.format}, ${up.tensors ?? '?'} tensors. Starting the conversion…`);
        source = { upload: up.id };
      } else {
        if (!zoo.value.trim()) throw new Error('Enter a catalogue id.');
        source = { zoo: zoo.value.trim() };
      }
      const options = {};
      if (inChannels.value) options.inChannels = Number(inChannels.value);
      if (head.value === 'features') options.head = 'features';
      if (head.value === 'new') options.head = Number(classes.value);
      if (!axisField.hidden) options.axis = axis.value;
      let job = await getJson('/v1/conversions', { method: 'POST', type: 'application/json', body: JSON.stringify({ source, mode: mode.value, options }), signal });
      jobId = job.id;
      cancel.hidden = false;
      cancel.onclick = () => call(`/v1/conversions/${jobId}`, { method: 'DELETE' }).catch((err) => say(describeError(err)));
      if (job.status !== 'succeeded') {
        for await (const { event, data } of events(job.links.events, signal)) {
          job = data;
          const p = job.progress ?? {};
          setPhase(event === 'done' ? 'done' : p.phase ?? 'queued');
          if (p.total) bar.value = Math.min(1, p.bytes / p.total);
          else bar.removeAttribute('value');
          if (event === 'progress') say(`${p.phase ?? job.status}${p.file ? ` ${p.file}` : ''}${p.total ? `: ${formatBytes(p.bytes)} of ${formatBytes(p.total)}` : ''}…`);
          if (event !== 'progress') break;
        }
      }
      if (job.status === 'failed') throw Object.assign(new Error(job.problem?.detail ?? 'the conversion failed'), { problem: job.problem });
      if (job.status === 'cancelled') {
        say('Cancelled.');
        return;
      }
      setPhase('done');
      bar.value = 1;
      say(job.cached ? 'Done: served from the cache.' : 'Done: converted and stored.');
      await showResult(result, job.checkpointId);
    } catch (err) {
      if (signal.aborted) return;
      bar.value = 0;
      say('Failed.');
      replace(result, notice('error', err.problem ? `${err.problem.title ?? 'Failed'}: ${err.message} (${err.problem.code})` : describeError(err)));
    } finally {
      submit.disabled = false;
      cancel.hidden = true;
    }
  });

  replace(
    root,
    h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, 'Convert a model'), h('p', { class: 'lead' }, 'Turn a 2D checkpoint into a 3D network. Results are cached: the same source, mode and options are converted once.')),
    ids,
    h('div', { class: 'two-col' }, form, progress),
  );
}

async function showResult(root, checkpointId) {
  const [checkpoint, { files }] = await Promise.all([getJson(`/v1/checkpoints/${checkpointId}`), getJson(`/v1/checkpoints/${checkpointId}/files`)]);
  const card = checkpoint.card ?? {};
  replace(
    root,
    notice('ok', 'Checkpoint ', h('code', {}, checkpointId), card.arch ? ` · ${card.arch}` : '', card.mode ? ` · ${card.mode}` : '',
      card.parameters?.converted ? ` · ${Number(card.parameters.converted).toLocaleString('en')} parameters` : ''),
    downloadsPanel(files, { repo: `checkpoints/${checkpointId}`, revision: 'main' }, { caption: 'Converted files' }),
    h('p', {}, h('a', { class: 'button primary', href: `#/infer?checkpoint=${checkpointId}` }, 'Run inference on it →')),
  );
}
