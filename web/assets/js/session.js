// The caller's token and the API calls made with it.
//
// A page takes its token from the URL fragment (`#token=…`, never sent to the
// server) or query (`?token=…`), else from what the start page stored. Pages
// hold no secrets and decide nothing: the hub checks the token on every call
// and gives each role its own view of an order.

const KEY = 'tracker.token';

/** The token this page works with, or null (then the start page asks for one). */
export function token() {
  const fromUrl =
    new URLSearchParams(location.hash.slice(1)).get('token') ||
    new URLSearchParams(location.search).get('token');
  if (fromUrl) {
    sessionStorage.setItem(KEY, fromUrl);
    return fromUrl;
  }
  return sessionStorage.getItem(KEY) || localStorage.getItem(KEY);
}

/** Keeps `t` for the other pages of this browser (the start page's "log in"). */
export function remember(t) {
  localStorage.setItem(KEY, t);
  sessionStorage.setItem(KEY, t);
}

/** The claims of a JWT (not verified: for display only), or null. */
export function claims(t) {
  try {
    const part = t.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return null;
  }
}

/** The token, or a trip to the start page that asks for one. */
export function requireToken() {
  const t = token();
  if (!t) {
    location.replace('/?next=' + encodeURIComponent(location.pathname));
    throw new Error('no token');
  }
  return t;
}

/** GET `path` as JSON with the token; throws with the API's message on failure. */
export async function getJson(path, t = token()) {
  const r = await fetch(path, { headers: { Authorization: 'Bearer ' + t } });
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const err = new Error((body && body.message) || r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

/** The last path segment, decoded: the order id of `/track/{id}` and `/replay/{id}`. */
export function orderFromPath() {
  const parts = location.pathname.split('/').filter(Boolean);
  return decodeURIComponent(parts[parts.length - 1] || '');
}

/**
 * How a page gets a new token for the same holder before its own expires:
 * the embedding site's `window.trackerRenewToken()` when it defines one, else
 * a newer token of the same `sub` and `role` that the start page stored
 * (someone signed in again in another tab). Null when there is none.
 */
export function renewer(current) {
  return async () => {
    if (typeof window.trackerRenewToken === 'function') return window.trackerRenewToken();
    const now = claims(current);
    const stored = localStorage.getItem(KEY);
    const next = stored && claims(stored);
    if (now && next && next.sub === now.sub && next.role === now.role && next.exp > now.exp) {
      current = stored;
      return stored;
    }
    return null;
  };
}
