// The console's JSON API: the session, its CSRF token, and errors a page can show.

let csrf = null;
let signedIn = false;

export class ApiError extends Error {
  constructor(status, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

async function errorOf(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') message = body.error;
  } catch { /* not JSON: keep the status line */ }
  const retry = response.headers.get('Retry-After');
  return new ApiError(response.status, message, retry === null ? null : Number(retry));
}

async function call(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  const response = await fetch(path, {
    method, headers, credentials: 'same-origin', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && path !== '/console/api/session') {
    signedIn = false;
    window.dispatchEvent(new CustomEvent('console:signed-out'));
  }
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  return response.json();
}

export const getJSON = (path) => call('GET', path);
export const postJSON = (path, body) => call('POST', path, body ?? {});

export async function loadSession() {
  const s = await call('GET', '/console/api/session');
  signedIn = Boolean(s.signed_in);
  csrf = s.csrf ?? null;
  return signedIn;
}

export async function signIn(password) {
  const s = await call('POST', '/console/api/session', { password });
  signedIn = Boolean(s.signed_in);
  csrf = s.csrf ?? null;
  return signedIn;
}

export async function signOut() {
  try {
    await call('DELETE', '/console/api/session');
  } finally {
    signedIn = false;
    csrf = null;
  }
}

export const isSignedIn = () => signedIn;

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}
