/**
 * Loopback origins that play the web a URL source is fetched from, and the check that nothing of
 * the server's own files ended up in its store.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';

async function listen(t: { after(fn: () => Promise<void>): void }, server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A loopback server that answers every path with the same bytes (a mirror serving a model); its origin. */
export function serveEverywhere(t: { after(fn: () => Promise<void>): void }, bytes: Uint8Array): Promise<string> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': bytes.byteLength });
    res.end(bytes);
  });
  return listen(t, server);
}

/**
 * A loopback server that answers every request as HTTP/1.0 with no Content-Length: the bytes,
 * then it closes its socket (a close-delimited body); its origin.
 */
export function serveCloseDelimited(t: { after(fn: () => Promise<void>): void }, bytes: Uint8Array): Promise<string> {
  const server = createTcpServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write('HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n');
      socket.end(bytes);
    });
  });
  return listen(t, server);
}

/** Every file under `root`, with its bytes. */
export async function storedFiles(root: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const entries = await readdir(root, { recursive: true, withFileTypes: true }).catch(() => []);
  for (const e of entries) if (e.isFile()) files.set(join(e.parentPath, e.name), await readFile(join(e.parentPath, e.name)));
  return files;
}

/** Bytes of files of this machine that a model naming them as external data would pull in. */
export function serverFileNeedles(): Uint8Array[] {
  const needles: Uint8Array[] = [];
  if (existsSync('/etc/passwd')) needles.push(readFileSync('/etc/passwd').subarray(0, 36));
  if (existsSync('/etc/hostname') && readFileSync('/etc/hostname').byteLength > 0) needles.push(readFileSync('/etc/hostname'));
  return needles;
}

/** Assert that no file holds any of `needles`. */
export function assertNoneHolds(files: Map<string, Buffer>, needles: Uint8Array[]): void {
  for (const [path, bytes] of files) {
    for (const needle of needles) assert.equal(bytes.indexOf(needle), -1, `${path} holds bytes of a file of the server`);
  }
}
