/**
 * The inference worker: holds the onnxruntime sessions and runs them. onnxruntime-node runs a
 * session synchronously on the thread that calls it, so the engine keeps the sessions here,
 * off the main thread, where a long run cannot stall the HTTP server's other requests.
 * A session can be specialised for one input shape first (`graph/specialize.ts`), here too,
 * so that the graph rewrite does not hold the main thread either. Speaks the messages of
 * `worker-host.ts`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { specializeModel } from '../../converters/graph/specialize.js';
import { readFileBytes } from '../../converters/io.js';
import { withMachineBlock } from './channel-block.js';
import { createSession } from './providers.js';
import { ownsBuffer, type HostReply, type HostRequest, type WireTensor, type WorkerStart } from './worker-host.js';

const port = parentPort;
if (!port) throw new Error('session-worker.js runs as a worker thread');
const { stop } = workerData as WorkerStart;
/** The host asked this worker to stop: it ends between calls, never inside onnxruntime. */
const stopping = () => Atomics.load(stop, 0) === 1;

const sessions = new Map<number, ort.InferenceSession>();

async function handle(m: HostRequest): Promise<{ reply: HostReply; transfer: ArrayBuffer[] }> {
  switch (m.op) {
    case 'create': {
      let model = m.model;
      let note: string | undefined;
      if (m.specializeFor) {
        const bytes = typeof model === 'string' ? await readFileBytes(model) : model;
        ({ bytes: model, note } = specializeModel(bytes, m.specializeFor, await withMachineBlock(m.specializeOptions, m.params.device ?? 'cpu')));
      }
      const created = await createSession(model, m.params);
      sessions.set(m.session, created.session);
      const reply: HostReply = { id: m.id, ok: true, inputNames: [...created.session.inputNames], device: created.device, fallback: created.fallback, specialized: note };
      return { reply, transfer: [] };
    }
    case 'run': {
      const session = sessions.get(m.session);
      if (!session) throw new Error(`session ${m.session} is not loaded in the worker`);
      const feeds: Record<string, ort.Tensor> = {};
      for (const [name, t] of Object.entries(m.feeds)) feeds[name] = new ort.Tensor('float32', t.data, t.dims);
      const out = await session.run(feeds);
      const outputs: Record<string, WireTensor> = {};
      const transfer: ArrayBuffer[] = [];
      for (const [name, value] of Object.entries(out)) {
        const t = value as ort.Tensor;
        const data = t.data as Float32Array;
        outputs[name] = { data, dims: [...t.dims] };
        if (ownsBuffer(data) && !transfer.includes(data.buffer as ArrayBuffer)) transfer.push(data.buffer as ArrayBuffer);
      }
      return { reply: { id: m.id, ok: true, outputs }, transfer };
    }
    case 'release': {
      const session = sessions.get(m.session);
      sessions.delete(m.session);
      await session?.release();
      return { reply: { id: m.id, ok: true }, transfer: [] };
    }
    case 'stop':
      throw new Error('the worker is stopping');
  }
}

port.on('message', (m: HostRequest) => {
  if (stopping()) process.exit(0);
  handle(m)
    .then(
      ({ reply, transfer }) => port.postMessage(reply, transfer),
      (err: unknown) => port.postMessage({ id: m.id, ok: false, message: err instanceof Error ? err.message : String(err), name: err instanceof Error ? err.name : 'Error' } satisfies HostReply),
    )
    .finally(() => {
      if (stopping()) process.exit(0);
    });
});
