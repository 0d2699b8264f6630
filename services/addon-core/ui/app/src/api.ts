// The console's session and its calls to the add-on's JSON API. Every URL is relative to the
// page (…/ui), so a base URL with a path prefix works as it is.

export interface Claims {
  workspaceId?: string;
  user?: string;
  theme?: string;
  workspaceRole?: string;
  language?: string;
  exp?: number;
}

/** The session Clockify opened the console with (`?auth_token=` in the iframe's URL). */
export interface Session {
  token: string;
  claims: Claims;
}

/** Why the console cannot be used, said as a person needs to read it. */
export class SessionProblem extends Error {}

function decode(token: string): Claims | null {
  const part = token.split('.')[1];
  if (!part) return null;
  try {
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(
      atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4))
        .split('')
        .map((c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0'))
        .join(''),
    );
    return JSON.parse(json) as Claims;
  } catch {
    return null;
  }
}

export const EXPIRED =
  'Your Clockify session has expired. Reload this page from Clockify (open the add-on again from the sidebar) to continue.';
export const MISSING =
  'This console opens inside Clockify: open the add-on from Clockify’s sidebar. It was opened without a Clockify session.';

/** The session in the page's URL; the server checks the signature, this only reads it. */
export function session(search: string, now: number = Date.now()): Session {
  const token = new URLSearchParams(search).get('auth_token') || '';
  if (!token) throw new SessionProblem(MISSING);
  const claims = decode(token);
  if (!claims) throw new SessionProblem(MISSING);
  if (claims.exp && claims.exp * 1000 <= now) throw new SessionProblem(EXPIRED);
  return { token, claims };
}

export function isAdmin(s: Session): boolean {
  return s.claims.workspaceRole === 'OWNER' || s.claims.workspaceRole === 'ADMIN';
}

export function isDark(s: Session): boolean {
  return (s.claims.theme || '').toUpperCase() === 'DARK';
}

/** An answer the API refused, with its reasons. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly details: string[] = [],
  ) {
    super(message);
  }
}

let current: Session | null = null;
let onExpired: (message: string) => void = () => {};

export function use(s: Session, expired: (message: string) => void) {
  current = s;
  onExpired = expired;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  if (!current) throw new SessionProblem(MISSING);
  const headers: Record<string, string> = { Authorization: 'Bearer ' + current.token, Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = res.status === 204 ? null : await res.json().catch(() => null);
  if (res.status === 401) {
    const expired = current.claims.exp !== undefined && current.claims.exp * 1000 <= Date.now();
    const message = expired ? EXPIRED : 'Clockify did not accept this session: ' + ((data && data.error && data.error.message) || 'unauthorized') + '. Reload the add-on from Clockify.';
    onExpired(message);
    throw new SessionProblem(message);
  }
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(err.message || res.statusText || 'request failed', res.status, err.details || []);
  }
  return data as T;
}

/** A query string from the non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? '?' + s : '';
}
