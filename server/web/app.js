// The page: a hash router over four views, the API key field, and the server's readiness.
import { apiKey, describeError, setApiKey } from './api.js';
import { catalogueView, modelView } from './catalogue.js';
import { convertView } from './convert.js';
import { inferView } from './infer.js';
import { h, notice, replace } from './ui.js';

const main = document.getElementById('main');

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = hash.split('?');
  const query = new URLSearchParams(search);
  if (path.startsWith('/model/')) return { nav: 'catalogue', title: 'Model', show: () => modelView(main, decodeURIComponent(path.slice(7))) };
  if (path === '/convert') return { nav: 'convert', title: 'Convert', show: () => convertView(main, query) };
  if (path === '/infer') return { nav: 'infer', title: 'Inference', show: () => inferView(main, query) };
  return { nav: 'catalogue', title: 'Catalogue', show: () => catalogueView(main, query) };
}

let current = null;
async function render() {
  // The catalogue rewrites its own query into the hash as filters change; that is not a new view.
  const view = location.hash.split('?')[0];
  if (view && !view.startsWith('#/')) return; // an in-page anchor such as the skip link
  if (view === current && view !== '#/convert' && view !== '#/infer' && !view.startsWith('#/model/')) return;
  const moved = current !== null;
  current = view;
  const r = route();
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === r.nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${r.title} · ACS Hub`;
  main.setAttribute('aria-busy', 'true');
  try {
    await r.show();
  } catch (err) {
    replace(main, h('h1', { tabindex: -1, 'data-failed': '' }, 'Something went wrong'), notice('error', describeError(err)));
  } finally {
    main.removeAttribute('aria-busy');
  }
  // After navigation, move focus to the new view's heading so keyboard and screen-reader users follow.
  if (moved) main.querySelector('h1')?.focus();
}

function keyField() {
  const form = document.getElementById('key-form');
  const input = document.getElementById('api-key');
  const state = document.getElementById('key-state');
  const show = () => {
    input.value = apiKey();
    state.textContent = apiKey() ? 'Key set' : 'No key';
    state.classList.toggle('on', Boolean(apiKey()));
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    show();
    // A view that failed (for want of a key, when the server protects reads) is tried again.
    if (main.querySelector('[data-failed]')) {
      current = null;
      void render();
    }
  });
  document.getElementById('key-forget').addEventListener('click', () => {
    setApiKey('');
    show();
  });
  show();
}

async function serverState() {
  const out = document.getElementById('server-state');
  try {
    const r = await fetch('/readyz');
    const body = await r.json();
    out.textContent = r.ok ? `Server ready · engine ${body.engine.replace(/^ok ?/, '').replace(/[()]/g, '') || 'ok'}` : `Server not ready: storage ${body.storage}, engine ${body.engine}`;
    out.className = r.ok ? 'ok' : 'bad';
  } catch {
    out.textContent = 'Server unreachable';
    out.className = 'bad';
  }
}

keyField();
void serverState();
window.addEventListener('hashchange', () => void render());
void render();
