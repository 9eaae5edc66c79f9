import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { KNOWN_ARCHITECTURES } from '../../zoo/architectures.js';
import { DEFAULT_CATALOGUE_PATH, findModel, listModels, loadCatalogue, loadLabels, validateCatalogue } from '../../zoo/catalogue.js';
import { CatalogueError, ModelNotFoundError } from '../../zoo/errors.js';
import { hashPrefixFromFilename } from '../../zoo/fetch/hash-prefix.js';
import { sourceUrl } from '../../zoo/fetch/resolve-source.js';
import { TEST_CATALOGUE } from './fake-zoo.js';

const real = await loadCatalogue();
const fixture = await loadCatalogue({ path: TEST_CATALOGUE });

test('catalogue: the shipped catalogue passes the schema, and every entry has a known architecture', () => {
  assert.equal(real.path, DEFAULT_CATALOGUE_PATH);
  assert.ok(real.models.length >= 40);
  for (const m of real.models) assert.ok((KNOWN_ARCHITECTURES as readonly string[]).includes(m.arch), `${m.id}: ${m.arch}`);
});

test('catalogue: the test catalogue has the same schema', () => {
  assert.ok(fixture.models.length >= 6);
});

test('catalogue: the required models are there, with their exact public files', () => {
  const urls: Record<string, string> = {
    'torchvision/resnet18': 'resnet18-f37072fd.pth',
    'torchvision/resnet50.imagenet1k_v1': 'resnet50-0676ba61.pth',
    'torchvision/resnet50.imagenet1k_v2': 'resnet50-11ad3fa6.pth',
    'torchvision/densenet121': 'densenet121-a639ec97.pth',
    'torchvision/convnext_tiny': 'convnext_tiny-983f1562.pth',
    'torchvision/efficientnet_b0': 'efficientnet_b0_rwightman-7f5810bc.pth',
  };
  for (const [id, file] of Object.entries(urls)) assert.equal(findModel(real, id).url, `https://download.pytorch.org/models/${file}`, id);
  const archs = new Set<string>(real.models.filter((m) => m.source.type === 'torchvision').map((m) => m.arch));
  for (const a of ['resnet34', 'resnet101', 'resnet152', 'resnext50_32x4d', 'wide_resnet50_2', 'densenet161', 'densenet169', 'densenet201', 'vgg11', 'vgg11_bn', 'vgg13', 'vgg13_bn', 'vgg16', 'vgg16_bn', 'vgg19', 'vgg19_bn', 'convnext_small', 'convnext_base', 'convnext_large', 'efficientnet_b1', 'efficientnet_b2', 'efficientnet_b3', 'mobilenet_v2', 'mobilenet_v3_small', 'mobilenet_v3_large']) {
    assert.ok(archs.has(a), a);
  }
  assert.equal(listModels(real, { family: 'resnet', source: 'torchvision' }).filter((m) => m.arch === 'resnet50').length, 2, 'ResNet-50 V1 and V2');
  const timm = listModels(real, { source: 'huggingface' });
  assert.ok(timm.some((m) => m.arch === 'resnet50' && m.format === 'safetensors'));
  assert.ok(timm.some((m) => m.arch.startsWith('convnext') && m.format === 'safetensors'));
  for (const m of timm) {
    assert.equal(m.source.type === 'huggingface' && /^[0-9a-f]{40}$/.test(m.source.revision), true, `${m.id}: revision pinned to a commit`);
  }
  assert.ok(listModels(real, {}).some((m) => m.domain === 'radiology'));
});

test('catalogue: torchvision segmentation weights with their COCO-VOC labels and metrics, and the classifiers the templates convert', async () => {
  const seg: Record<string, [string, number, number]> = {
    fcn_resnet50: ['fcn_resnet50_coco-1167a1af.pth', 60.5, 91.4],
    fcn_resnet101: ['fcn_resnet101_coco-7ecb50ca.pth', 63.7, 91.9],
    deeplabv3_resnet50: ['deeplabv3_resnet50_coco-cd0a2569.pth', 66.4, 92.4],
    deeplabv3_resnet101: ['deeplabv3_resnet101_coco-586e9e4e.pth', 67.4, 92.4],
    deeplabv3_mobilenet_v3_large: ['deeplabv3_mobilenet_v3_large-fc3c493d.pth', 60.3, 91.2],
    lraspp_mobilenet_v3_large: ['lraspp_mobilenet_v3_large-d234d4ea.pth', 57.9, 91.2],
  };
  for (const [arch, [file, miou, pixelAcc]] of Object.entries(seg)) {
    const m = findModel(real, `torchvision/${arch}`);
    assert.equal(m.url, `https://download.pytorch.org/models/${file}`, arch);
    assert.equal(m.task, 'segmentation', arch);
    assert.deepEqual(m.metrics?.['coco-val2017-voc-labels'], { miou, pixel_acc: pixelAcc }, arch);
    const labels = await loadLabels(m);
    assert.equal(labels.length, 21, arch);
    assert.deepEqual([labels[0], labels[15], labels[20]], ['__background__', 'person', 'tvmonitor'], arch);
  }
  const archs = new Set<string>(real.models.map((m) => m.arch));
  const classifiers = ['squeezenet1_0', 'squeezenet1_1', 'googlenet', 'inception_v3', 'mnasnet0_5', 'mnasnet0_75', 'mnasnet1_0', 'mnasnet1_3', 'shufflenet_v2_x0_5', 'shufflenet_v2_x1_0', 'shufflenet_v2_x1_5', 'shufflenet_v2_x2_0', 'regnet_x_400mf', 'regnet_x_32gf', 'regnet_y_400mf', 'regnet_y_128gf', 'efficientnet_v2_s', 'efficientnet_v2_m', 'efficientnet_v2_l'];
  for (const a of classifiers) assert.ok(archs.has(a), a);
  assert.equal(findModel(real, 'torchvision/googlenet').url, 'https://download.pytorch.org/models/googlenet-1378be20.pth');
  assert.equal(findModel(real, 'torchvision/squeezenet1_1').task, 'classification');
});

test('catalogue: each url is the source under the default base URL; torchvision names carry a hash prefix', () => {
  for (const m of [...real.models, ...fixture.models]) {
    assert.equal(sourceUrl(m.source), m.url, m.id);
    if (m.source.type === 'torchvision') assert.match(hashPrefixFromFilename(m.source.file) ?? '', /^[0-9a-f]{6,}$/, m.id);
  }
});

test('catalogue: ImageNet-1k labels are the 1000 torchvision class names', async () => {
  const labels = await loadLabels(findModel(real, 'torchvision/resnet18'));
  assert.equal(labels.length, 1000);
  assert.equal(labels[0], 'tench');
  assert.equal(labels[999], 'toilet tissue');
  assert.equal((await loadLabels(findModel(real, 'torchxrayvision/resnet50-res512-all'))).length, 18);
});

test('catalogue: lookups by id and alias; unknown ids are a ModelNotFoundError', () => {
  assert.equal(findModel(real, 'torchvision/resnet50').id, 'torchvision/resnet50.imagenet1k_v2');
  assert.throws(() => findModel(real, 'nope/nope'), (e: unknown) => e instanceof ModelNotFoundError && e.code === 'MODEL_NOT_FOUND');
});

test('catalogue: schema violations name the entry and the field', async () => {
  const doc = JSON.parse(await readFile(TEST_CATALOGUE, 'utf8')) as { version: number; models: Record<string, unknown>[] };
  const bad = (mutate: (m: Record<string, unknown>) => void, pattern: RegExp): void => {
    const copy = structuredClone(doc);
    mutate(copy.models[0]!);
    assert.throws(() => validateCatalogue(copy), (e: unknown) => e instanceof CatalogueError && pattern.test(e.message), String(pattern));
  };
  bad((m) => (m['arch'] = 'resnet9000'), /'torchvision\/resnet18\.imagenet1k_v1'.*'arch'.*KNOWN_ARCHITECTURES/);
  bad((m) => (m['sha256'] = 'xyz'), /'sha256' must match/);
  bad((m) => (m['source'] = { type: 'ftp' }), /source: 'type' must be one of/);
  bad((m) => ((m['preprocessing'] as Record<string, unknown>)['mean'] = [0.5]), /'mean' must be 3/);
  bad((m) => (m['labels'] = 'imagenet-22k'), /unknown label set/);
  bad((m) => (m['task'] = 'detection'), /'task' must be classification or segmentation/);
  bad((m) => (m['id'] = doc.models[1]!['id']), /appears twice/);
  bad((m) => delete m['licence'], /'licence'/);
  assert.throws(() => validateCatalogue({ version: 2, models: [] }), CatalogueError);
});
