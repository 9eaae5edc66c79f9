// Download links for a set of files, and the same downloads as a curl line, a Python line and
// the Hugging Face client line (repo = zoo id and revision = mode, or checkpoints/<id> at main).
import { apiKey } from './api.js';
import { field, formatBytes, h, replace, select, snippet } from './ui.js';

/** Absolute URL of a path of this server. */
export function absolute(path) {
  return new URL(path, location.origin).href;
}

/** The three lines that download `name` from `url`: a shell line and two Python lines. */
export function commands(url, name, hf) {
  const keyed = Boolean(apiKey());
  return {
    curl: `curl -fLO${keyed ? ' -H "Authorization: Bearer $ACS_HUB_KEY"' : ''} ${url}`,
    python: keyed
      ? `import os, urllib.request as u; open("${name}", "wb").write(u.urlopen(u.Request("${url}", headers={"Authorization": "Bearer " + os.environ["ACS_HUB_KEY"]})).read())`
      : `import urllib.request; urllib.request.urlretrieve("${url}", "${name}")`,
    hf: `${keyed ? 'import os; ' : ''}from huggingface_hub import hf_hub_download; hf_hub_download(repo_id="${hf.repo}", filename="${name}", revision="${hf.revision}", endpoint="${location.origin}"${keyed ? ', token=os.environ["ACS_HUB_KEY"]' : ''})`,
  };
}

/**
 * A table of files (name, size, sha256 when known, a download link) and the command lines for
 * the file picked in it. files: [{ name, url, size?, sha256? }]; hf: { repo, revision }.
 */
export function downloadsPanel(files, hf, { caption = 'Files' } = {}) {
  const picker = select(files.map((f) => [f.name, f.name]), { class: 'file-picker' });
  const preferred = files.find((f) => f.name === 'model.safetensors') ?? files[0];
  if (preferred) picker.value = preferred.name;
  const lines = h('div', { class: 'snippets' });
  const show = () => {
    const file = files.find((f) => f.name === picker.value);
    if (!file) return;
    const c = commands(absolute(file.url), file.name, hf);
    replace(lines, snippet('curl', c.curl), snippet('Python', c.python), snippet('huggingface_hub', c.hf));
  };
  picker.addEventListener('change', show);
  show();
  const known = files.some((f) => f.size !== undefined);
  const table = h(
    'table',
    { class: 'files' },
    h('caption', {}, caption),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'File'), known && h('th', { scope: 'col', class: 'num' }, 'Size'), known && h('th', { scope: 'col' }, 'sha256'), h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Download')))),
    h(
      'tbody',
      {},
      files.map((f) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, h('code', {}, f.name)),
          known && h('td', { class: 'num' }, formatBytes(f.size)),
          known && h('td', {}, h('code', { class: 'hash', title: f.sha256 }, f.sha256 ? `${f.sha256.slice(0, 12)}…` : '—')),
          h('td', { class: 'actions' }, h('a', { class: 'button small', href: f.url, download: f.name, 'aria-label': `Download ${f.name}` }, 'Download')),
        ),
      ),
    ),
  );
  return h(
    'div',
    { class: 'downloads' },
    table,
    h('div', { class: 'commands' }, h('h4', {}, 'From a terminal or Python'), field('Commands for', picker), lines,
      h('p', { class: 'hint' }, apiKey() ? 'Set ACS_HUB_KEY to your API key before running these lines. ' : '', 'The urllib line runs in any Python 3; the last line needs the huggingface_hub package.')),
  );
}
