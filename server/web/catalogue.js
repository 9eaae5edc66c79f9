// The catalogue (GET /v1/zoo) with search and filters, and a model's card (GET /v1/zoo/{ns}/{name}).
import { describeError, getJson } from './api.js';
import { downloadsPanel } from './downloads.js';
import { field, formatBytes, formatCount, h, notice, replace, select } from './ui.js';

const SIZES = [
  ['', 'Any size'],
  ['0-10000000', 'Under 10 M'],
  ['10000000-30000000', '10 M – 30 M'],
  ['30000000-100000000', '30 M – 100 M'],
  ['100000000-', '100 M and more'],
];

let catalogue;

/** The catalogue, fetched once per page load. */
export async function loadCatalogue() {
  catalogue ??= getJson('/v1/zoo').then((r) => r.models);
  return catalogue.catch((err) => {
    catalogue = undefined;
    throw err;
  });
}

function options(models, key, all) {
  const values = [...new Set(models.map((m) => m[key]).filter(Boolean))].sort();
  return [['', all], ...values.map((v) => [v, v])];
}

/** The catalogue view. `query` holds the filters (also kept in the URL). */
export async function catalogueView(root, query) {
  const models = await loadCatalogue();
  const search = h('input', { type: 'search', name: 'q', placeholder: 'resnet, convnext…', autocomplete: 'off', value: query.get('q') ?? '' });
  const family = select(options(models, 'family', 'All families'), { name: 'family' });
  const licence = select(options(models, 'licence', 'All licences'), { name: 'licence' });
  const task = select(options(models, 'task', 'All tasks'), { name: 'task' });
  const size = select(SIZES, { name: 'params' });
  for (const control of [family, licence, task, size]) control.value = query.get(control.name) ?? '';
  const count = h('p', { class: 'count', role: 'status', 'aria-live': 'polite' });
  const body = h('tbody');
  const reset = h('button', { type: 'reset', class: 'ghost' }, 'Clear filters');
  const form = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the catalogue', onsubmit: (e) => e.preventDefault() },
    field('Search', search, 'Ids, titles, architectures'), field('Family', family), field('Licence', licence), field('Task', task), field('Parameters', size), reset);

  const render = () => {
    const q = search.value.trim().toLowerCase();
    const [lo, hi] = size.value ? size.value.split('-').map((v) => (v === '' ? Infinity : Number(v))) : [0, Infinity];
    const shown = models.filter(
      (m) =>
        (!q || [m.id, m.title, m.arch, m.family, m.domain ?? '', ...(m.aliases ?? [])].some((t) => t.toLowerCase().includes(q))) &&
        (!family.value || m.family === family.value) &&
        (!licence.value || m.licence === licence.value) &&
        (!task.value || m.task === task.value) &&
        (!size.value || (m.params !== undefined && m.params >= lo && m.params < hi)),
    );
    count.textContent = `${shown.length} of ${models.length} models`;
    replace(
      body,
      shown.length
        ? shown.map((m) =>
            h('tr', {},
              h('th', { scope: 'row' }, h('a', { href: `#/model/${m.id}` }, m.title), h('div', { class: 'sub' }, h('code', {}, m.id))),
              h('td', {}, m.family),
              h('td', {}, h('span', { class: `tag ${m.task}` }, m.task)),
              h('td', {}, m.licence),
              h('td', { class: 'num' }, formatCount(m.params)),
              h('td', {}, m.source, m.domain ? h('div', { class: 'sub' }, m.domain) : undefined)))
        : h('tr', {}, h('td', { colspan: 6, class: 'empty' }, 'No model matches these filters.')),
    );
    const params = new URLSearchParams();
    for (const control of [search, family, licence, task, size]) if (control.value) params.set(control.name, control.value);
    const next = `#/${params.size ? `?${params}` : ''}`;
    if (location.hash !== next && !(location.hash === '' && next === '#/')) history.replaceState(null, '', next);
  };
  form.addEventListener('input', render);
  form.addEventListener('reset', () => setTimeout(render));
  render();

  replace(
    root,
    h('div', { class: 'view-head' }, h('h1', { tabindex: -1 }, 'Model catalogue'), h('p', { class: 'lead' }, 'Pretrained 2D networks from torchvision, timm and other public zoos, converted on request into ACS 3D networks with the same parameters.')),
    h('div', { class: 'catalogue' },
      h('aside', {}, form),
      h('section', { 'aria-label': 'Models' }, count,
        h('div', { class: 'table-wrap' },
          h('table', { class: 'models' },
            h('caption', { class: 'sr-only' }, 'Models in the catalogue'),
            h('thead', {}, h('tr', {}, ['Model', 'Family', 'Task', 'Licence', 'Parameters', 'Source'].map((c) => h('th', { scope: 'col', class: c === 'Parameters' ? 'num' : undefined }, c)))),
            body)))),
  );
}

const MODES = [
  ['acs', 'acs — kernels split into axial, coronal, sagittal views'],
  ['2.5d', '2.5d — 2D kernels with a unit axis'],
  ['i3d', 'i3d — kernels inflated along one axis'],
  ['mean-acs', 'mean-acs — whole kernel per view, views averaged'],
  ['soft-acs', 'soft-acs — whole kernel per view, learned view weights'],
];

/** The mode choices, shared with the conversion form. */
export const MODE_OPTIONS = MODES;

function metricsTable(metrics) {
  const rows = Object.entries(metrics ?? {}).flatMap(([dataset, values]) => Object.entries(values).map(([name, v]) => [dataset, name, v]));
  if (!rows.length) return h('p', { class: 'muted' }, 'No published metrics.');
  return h('table', { class: 'metrics' },
    h('caption', { class: 'sr-only' }, 'Published metrics of the 2D model'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Dataset'), h('th', { scope: 'col' }, 'Metric'), h('th', { scope: 'col', class: 'num' }, 'Value'))),
    h('tbody', {}, rows.map(([d, n, v]) => h('tr', {}, h('td', {}, d), h('td', {}, n), h('td', { class: 'num' }, String(v))))));
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(([, v]) => v !== undefined && v !== null && v !== '').map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))));
}

/** A model's card, with its downloads per mode. */
export async function modelView(root, id) {
  const [ns, ...rest] = id.split('/');
  let m;
  try {
    m = await getJson(`/v1/zoo/${encodeURIComponent(ns)}/${encodeURIComponent(rest.join('/'))}`);
  } catch (err) {
    replace(root, h('h1', { tabindex: -1 }, 'Model not found'), notice('error', describeError(err)), h('p', {}, h('a', { href: '#/' }, '← Back to the catalogue')));
    return;
  }
  const mode = select(MODES, { name: 'mode' });
  const downloads = h('div');
  const showDownloads = () => {
    const files = Object.entries(m.downloads[mode.value] ?? {}).map(([name, url]) => ({ name, url }));
    replace(downloads, downloadsPanel(files, { repo: m.id, revision: mode.value }, { caption: `Files in mode ${mode.value}` }),
      h('p', { class: 'hint' }, 'The first download converts the model and may take a moment; later ones come from the cache.'));
  };
  mode.addEventListener('change', showDownloads);
  showDownloads();
  const pre = m.preprocessing ?? {};
  replace(
    root,
    h('nav', { 'aria-label': 'Breadcrumb', class: 'crumbs' }, h('a', { href: '#/' }, 'Catalogue'), ' / ', h('span', { 'aria-current': 'page' }, m.id)),
    h('div', { class: 'view-head card-head' },
      h('div', {}, h('h1', { tabindex: -1 }, m.title), h('p', { class: 'sub' }, h('code', {}, m.id), (m.aliases ?? []).length ? ` · also ${m.aliases.join(', ')}` : '')),
      h('div', { class: 'tags' }, h('span', { class: 'tag' }, m.family), h('span', { class: `tag ${m.task}` }, m.task), h('span', { class: 'tag licence' }, m.licence))),
    h('div', { class: 'card-grid' },
      h('section', { class: 'panel', 'aria-labelledby': 'about-h' },
        h('h2', { id: 'about-h' }, 'About'),
        facts([
          ['Family', m.family],
          ['Architecture', h('code', {}, m.arch)],
          ['Task', m.task],
          ['Licence', m.licenceNote ? `${m.licence} — ${m.licenceNote}` : m.licence],
          ['Domain', m.domain],
          ['Parameters', m.params ? `${m.params.toLocaleString('en')} (${formatCount(m.params)})` : undefined],
          ['Labels', m.labels ? `${m.labels.length} classes` : undefined],
          ['Source', h('a', { href: m.url, rel: 'noopener noreferrer' }, m.source)],
          ['2D weights', m.size ? `${m.format}, ${formatBytes(m.size)}` : m.format],
          ['sha256', m.sha256 ? h('code', { class: 'hash' }, m.sha256) : undefined],
          ['Input', pre.inputSize ? `${pre.inChannels ?? 3} × ${pre.inputSize} px${pre.mean ? `, mean ${pre.mean.join(', ')}` : ''}` : undefined],
        ])),
      h('section', { class: 'panel', 'aria-labelledby': 'metrics-h' }, h('h2', { id: 'metrics-h' }, 'Metrics'), metricsTable(m.metrics),
        m.labels?.length ? h('details', {}, h('summary', {}, `Labels (${m.labels.length})`), h('ol', { class: 'labels', start: 0 }, m.labels.slice(0, 1000).map((l) => h('li', {}, l)))) : undefined)),
    h('section', { class: 'panel', 'aria-labelledby': 'downloads-h' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'downloads-h' }, 'Downloads'),
        h('div', { class: 'inline' }, field('Mode', mode), h('a', { class: 'button', href: `#/convert?zoo=${encodeURIComponent(m.id)}` }, 'Convert with options…'))),
      downloads),
  );
}
