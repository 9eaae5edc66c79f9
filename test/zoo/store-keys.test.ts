/**
 * The store owns its keys: no source file outside `zoo/store.ts` writes an object key (a string
 * that starts with one of the store's areas, or names a conversion's manifest).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { AREAS, MANIFEST } from '../../zoo/store.js';
import { ROOT } from '../helpers.js';

const FOLDERS = ['converters', 'inference', 'zoo', 'server', 'cli'];
const OWNER = join('zoo', 'store.ts');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sources(path);
    return e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The lines of `text` that build a store key by hand. */
function keyLiterals(text: string): string[] {
  const tops = [...new Set(Object.values(AREAS).map((a) => a.split('/')[0]!))];
  const area = new RegExp(`['"\`](?:${tops.join('|')})/`);
  const manifest = new RegExp(`(?:\\}|['"\`])${MANIFEST.replace('.', '\\.')}`);
  return text.split('\n').filter((line) => !/^\s*(\*|\/\/|\/\*)/.test(line) && (area.test(line) || manifest.test(line)));
}

test('store keys: the check finds a key built by hand', () => {
  assert.deepEqual(keyLiterals("const k = `conversions/${sha}/acs/`;\n// 'blobs/' in a comment\nconst m = `${prefix}manifest.json`;"), [
    'const k = `conversions/${sha}/acs/`;',
    'const m = `${prefix}manifest.json`;',
  ]);
});

test('store keys: no file outside zoo/store.ts builds one', () => {
  const found = FOLDERS.flatMap(sources)
    .filter((f) => f !== OWNER)
    .flatMap((f) => keyLiterals(readFileSync(join(ROOT, f), 'utf8')).map((line) => `${f}: ${line.trim()}`));
  assert.deepEqual(found, []);
});
