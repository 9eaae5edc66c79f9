/**
 * The README's fine-tuning section, run as written: its `npx acs-hub convert` lines (the built
 * CLI standing for `npx acs-hub`) in a fresh folder that holds the repository's test/, then its
 * Python block with the tests' Python (PyTorch and safetensors), which loads the converted
 * weights into model.py's Model with strict=True, puts a new head on it and takes one SGD step.
 * So the snippet cannot drift from the files the converter writes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { cli, ROOT, tempDir } from './helpers.js';
import { PYTHON, PYTHON_SETUP_HINT } from './python.js';

const exec = promisify(execFile);

/** The shell lines (`npx acs-hub ...`) and the Python block of the README's fine-tuning section. */
export function fineTuningSection(readme: string): { commands: string[]; python: string } {
  const start = readme.indexOf('\n## Fine-tuning in PyTorch\n');
  assert.ok(start >= 0, 'README.md has no "Fine-tuning in PyTorch" section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const commands = section.split('\n').filter((l) => /^ {4}npx acs-hub /.test(l)).map((l) => l.trim());
  const python = /```python\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(python, 'the fine-tuning section holds no python block');
  return { commands, python };
}

test("the README's fine-tuning snippet runs as written on the files acs-hub convert writes", { timeout: 120_000 }, async (t) => {
  const { commands, python } = fineTuningSection(readFileSync(join(ROOT, 'README.md'), 'utf8'));
  assert.ok(commands.some((c) => / --out model\.py\b/.test(c)), `the section writes model.py: ${commands.join('; ')}`);
  assert.match(python, /from model import Model/);
  assert.match(python, /\.load_state_dict\((load_file|torch\.load)\(/, 'the snippet loads the converted weights into the model');
  const dir = await tempDir(t);
  await symlink(join(ROOT, 'test'), join(dir, 'test'));
  for (const command of commands) {
    const r = await cli(command.replace(/^npx acs-hub /, '').split(/\s+/), { cwd: dir });
    assert.equal(r.code, 0, `${command}\n${r.stderr}`);
  }
  await writeFile(join(dir, 'finetune.py'), python);
  const run = await exec(PYTHON, ['finetune.py'], { cwd: dir, timeout: 100_000, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' } }).catch((err: Error & { stderr?: string }) => {
    assert.fail(`the README's snippet failed: ${err.message}\n${err.stderr ?? ''}\n${PYTHON_SETUP_HINT}`);
  });
  const loss = /^loss (\S+)$/m.exec(run.stdout);
  assert.ok(loss, `the snippet printed no loss: ${run.stdout}`);
  assert.ok(Number.isFinite(Number(loss[1])) && Number(loss[1]) > 0, `loss ${loss[1]}`);
});
