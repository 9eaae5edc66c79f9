// The page's one way to the HTTP API: the key from sessionStorage as a bearer token, problem+json
// answers as ApiError, Server-Sent Events read over fetch (so that they carry the key too).

const KEY_ITEM = 'acs-hub.apiKey';

/** The API key of this tab, or ''. */
export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) ?? '';
}

/** Store the key for this tab (cleared when the tab closes); '' forgets it. */
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

/** An answer that was not 2xx, with its problem document. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

/** fetch() a path of this server with the key; throws ApiError on a non-2xx answer. */
export async function call(path, { method = 'GET', body, type, accept = 'application/json', signal } = {}) {
  const headers = new Headers({ Accept: accept });
  if (type) headers.set('Content-Type', type);
  const key = apiKey();
  if (key) headers.set('Authorization', `Bearer ${key}`);
  const res = await fetch(path, { method, body, headers, signal });
  if (!res.ok) {
    const problem = await res.json().catch(() => ({ title: res.statusText }));
    throw new ApiError(res.status, problem);
  }
  return res;
}

/**
 * POST a file and parse the JSON answer, with `onProgress(sent, total)` as its bytes go out.
 * XMLHttpRequest, because fetch reports no upload progress (a streamed fetch body needs HTTP/2).
 */
export function upload(path, file, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    const key = apiKey();
    if (key) xhr.setRequestHeader('Authorization', `Bearer ${key}`);
    const progress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.upload.addEventListener('progress', progress);
    xhr.upload.addEventListener('load', progress);
    xhr.addEventListener('load', () => {
      let body;
      try {
        body = JSON.parse(xhr.responseText);
      } catch {
        body = undefined;
      }
      if (xhr.status >= 200 && xhr.status < 300 && body) resolve(body);
      else reject(new ApiError(xhr.status, body ?? { title: xhr.statusText || 'The upload failed' }));
    });
    xhr.addEventListener('error', () => reject(new Error('The upload failed: the connection to the server was lost.')));
    xhr.addEventListener('abort', () => reject(Object.assign(new Error('The upload was cancelled.'), { name: 'AbortError' })));
    signal?.addEventListener('abort', () => xhr.abort(), { once: true });
    xhr.send(file);
  });
}

/** GET (or send) and parse JSON. */
export async function getJson(path, options) {
  return (await call(path, options)).json();
}

/** The events of a Server-Sent Events stream, as { event, data } with data parsed as JSON. */
export async function* events(path, signal) {
  const res = await call(path, { accept: 'text/event-stream', signal });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      const data = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) yield { event, data: JSON.parse(data.join('\n')) };
    }
  }
}

/** A short message for an error, with its code when the server gave one. */
export function describeError(err) {
  if (err instanceof ApiError) {
    const code = err.problem.code ? ` (${err.problem.code})` : '';
    if (err.status === 401) return `This needs an API key: enter it at the top of the page${code}.`;
    return `${err.problem.title ?? 'Error'}: ${err.message}${code}`;
  }
  return err instanceof Error ? err.message : String(err);
}
