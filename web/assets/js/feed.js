// A live feed of orders' events that survives bad networks.
//
// It speaks the watcher protocol (docs/protocol.md) over the best transport
// that works: WebSocket, else Server-Sent Events, else long-poll. It keeps each
// order's last `seq` and `epoch`, so every reconnect resumes with `since` and
// the page sees each event once, in order (duplicates are dropped by seq).
// Reconnects wait with exponential backoff and full jitter. A transport that
// fails twice in a row before delivering a single frame (blocked by a proxy,
// say) is given up for the next one.
//
// Tokens end. A minute before the token's `exp` (or at a tenth of a short
// life) the feed asks `renewToken` for a new one: on a WebSocket it is handed
// over with the `refresh` op, SSE and long-poll use it from their next
// request on. When the server ends the session (close 4001, an SSE stream
// or poll refused after `exp`) the feed renews and reconnects with `since`;
// when no new token can be had, it stops and reports the state `ended`.

const BASE_MS = 500;
const MAX_MS = 15000;

/** Delay before reconnect number `attempt` (0-based): exponential, capped, jittered. */
export function backoff(attempt) {
  const cap = Math.min(MAX_MS, BASE_MS * 2 ** attempt);
  return cap / 2 + Math.random() * (cap / 2);
}

const NAMES = { ws: 'WebSocket', sse: 'SSE', poll: 'long-poll' };

/** The `exp` claim of a JWT (Unix seconds), or null. Not verified: the hub does that. */
export function expOf(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(part)).exp;
    return typeof exp === 'number' ? exp : null;
  } catch {
    return null;
  }
}

export class Feed {
  /**
   * @param {object} o
   * @param {string} o.token the caller's JWT
   * @param {(frame: object) => void} o.onFrame every event, snapshot and error, in order
   * @param {(state: {state: string, transport?: string, retryIn?: number}) => void} [o.onState]
   * @param {string[]} [o.transports] the ladder, fastest first
   * @param {() => Promise<string|null>} [o.renewToken] a new token for the same
   *   holder, or null when the page cannot get one (then the session ends)
   */
  constructor({
    token,
    onFrame,
    onState = () => {},
    transports = ['ws', 'sse', 'poll'],
    renewToken = async () => null,
  }) {
    this.token = token;
    this.renewToken = renewToken;
    this.renewTimer = null;
    this.onFrame = onFrame;
    this.onState = onState;
    this.ladder = transports;
    this.level = 0;
    this.failures = 0;
    this.attempt = 0;
    this.orders = new Map(); // order id -> { seq, epoch }
    this.current = null;
    this.timer = null;
    this.stopped = true;
  }

  /** Starts watching `order`; with `history`, the log's whole stored history is replayed first. */
  watch(order, { history = false } = {}) {
    if (this.orders.has(order)) return;
    this.orders.set(order, { seq: history ? 0 : null, epoch: null });
    if (this.current) this.current.add(order);
  }

  /** Stops watching `order`. */
  unwatch(order) {
    if (!this.orders.delete(order)) return;
    if (this.current) this.current.remove(order);
  }

  /** Connects (the first transport of the ladder). */
  start() {
    this.stopped = false;
    this.scheduleRenewal();
    this.connect();
  }

  /** Seconds until the token's `exp`, or null when it names none. */
  secondsLeft() {
    const exp = expOf(this.token);
    return exp == null ? null : exp - Date.now() / 1000;
  }

  /** Asks for a new token a minute before expiry (a tenth of a short life). */
  scheduleRenewal() {
    clearTimeout(this.renewTimer);
    const left = this.secondsLeft();
    if (left == null) return;
    const ahead = Math.min(60, Math.max(1, left / 10));
    this.renewTimer = setTimeout(() => this.renew(), Math.max(0, left - ahead) * 1000);
  }

  /** Gets a new token and hands it over; false when there is none to be had. */
  async renew() {
    let t = null;
    try {
      t = await this.renewToken();
    } catch {
      t = null;
    }
    if (!t || t === this.token || (expOf(t) || 0) <= (expOf(this.token) || 0)) return false;
    this.token = t;
    if (this.current && this.current.refresh) this.current.refresh(t);
    this.scheduleRenewal();
    return true;
  }

  /** The server ended the session: renew and reconnect, or stop as `ended`. */
  async expired(t) {
    if (t !== this.current || this.stopped) return;
    t.close();
    this.current = null;
    if (await this.renew()) {
      this.connect();
      return;
    }
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    this.onState({ state: 'ended', transport: NAMES[this.transport] });
  }

  /** Closes everything; no reconnects. */
  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.renewTimer);
    if (this.current) this.current.close();
    this.current = null;
    this.onState({ state: 'closed' });
  }

  /** The transport in use now (`ws`, `sse`, `poll`). */
  get transport() {
    return this.ladder[this.level];
  }

  connect() {
    if (this.stopped) return;
    const kind = this.transport;
    this.onState({ state: 'connecting', transport: NAMES[kind] });
    const T = { ws: WsTransport, sse: SseTransport, poll: PollTransport }[kind];
    this.current = new T(this);
    this.current.open();
  }

  /** A frame's JSON text from transport `t`; text that is not JSON is ignored. */
  receive(t, text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return;
    }
    this.arrived(t);
    this.frame(f);
  }

  /** Transport `t` delivered something: the first time, it counts as working. */
  arrived(t) {
    if (t.delivered) return;
    t.delivered = true;
    this.up(t);
  }

  /** A transport delivered its first frame. */
  up(t) {
    if (t !== this.current) return;
    this.failures = 0;
    this.attempt = 0;
    this.onState({ state: 'live', transport: NAMES[this.transport] });
  }

  /** A transport ended; `delivered` tells whether it ever worked. */
  down(t, delivered) {
    if (t !== this.current || this.stopped) return;
    const left = this.secondsLeft();
    if (left != null && left < 0) {
      // Past `exp`: what ended it was the token (an SSE stream ends then).
      this.expired(t);
      return;
    }
    t.close();
    this.current = null;
    if (delivered) {
      this.failures = 0;
    } else {
      this.failures += 1;
      if (this.failures >= 2 && this.level < this.ladder.length - 1) {
        this.level += 1;
        this.failures = 0;
        this.attempt = 0;
      }
    }
    const wait = backoff(this.attempt);
    this.attempt += 1;
    this.onState({ state: 'reconnecting', transport: NAMES[this.transport], retryIn: wait });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }

  /** One frame from any transport: resume state kept, duplicates dropped. */
  frame(f) {
    if (!f || typeof f !== 'object' || f.t === 'pong') return;
    const st = f.order != null ? this.orders.get(f.order) : null;
    if (f.t === 'error' || !st) {
      if (f.t === 'error') this.onFrame(f);
      return;
    }
    if (f.t === 'snapshot') {
      st.seq = f.seq;
      st.epoch = f.epoch;
    } else if (typeof f.seq === 'number') {
      if (st.seq != null && f.seq <= st.seq) return;
      st.seq = f.seq;
    }
    this.onFrame(f);
  }

  /** `since`/`epoch` query of `order` for SSE and long-poll. */
  resumeQuery(order) {
    const st = this.orders.get(order);
    if (!st || st.seq == null) return '';
    return '&since=' + st.seq + (st.epoch ? '&epoch=' + encodeURIComponent(st.epoch) : '');
  }
}

class WsTransport {
  constructor(feed) {
    this.feed = feed;
    this.delivered = false;
    this.closed = false;
  }

  open() {
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/v1/ws?token=${encodeURIComponent(this.feed.token)}`;
    try {
      this.ws = new WebSocket(url);
    } catch {
      setTimeout(() => this.feed.down(this, false), 0);
      return;
    }
    this.ws.onopen = () => {
      for (const order of this.feed.orders.keys()) this.add(order);
      this.ping = setInterval(() => this.send({ op: 'ping' }), 25000);
    };
    this.ws.onmessage = (m) => this.feed.receive(this, m.data);
    this.ws.onclose = (e) => {
      clearInterval(this.ping);
      if (this.closed) return;
      if (e.code === 4001) this.feed.expired(this);
      else this.feed.down(this, this.delivered);
    };
  }

  /** Hands a new token to the open connection (`{"op":"refresh"}`). */
  refresh(token) {
    this.send({ op: 'refresh', token });
  }

  send(v) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(v));
  }

  add(order) {
    const st = this.feed.orders.get(order);
    const op = { op: 'sub', order };
    if (st && st.seq != null) {
      op.since = st.seq;
      if (st.epoch) op.epoch = st.epoch;
    }
    this.send(op);
  }

  remove(order) {
    this.send({ op: 'unsub', order });
  }

  close() {
    this.closed = true;
    clearInterval(this.ping);
    if (this.ws) this.ws.close();
  }
}

class SseTransport {
  constructor(feed) {
    this.feed = feed;
    this.sources = new Map();
    this.delivered = false;
    this.closed = false;
  }

  open() {
    if (typeof EventSource === 'undefined') {
      setTimeout(() => this.feed.down(this, false), 0);
      return;
    }
    for (const order of this.feed.orders.keys()) this.add(order);
  }

  add(order) {
    const url =
      `/v1/orders/${encodeURIComponent(order)}/sse?token=${encodeURIComponent(this.feed.token)}` +
      this.feed.resumeQuery(order);
    const es = new EventSource(url);
    es.onmessage = (e) => this.feed.receive(this, e.data);
    // EventSource would retry by itself, without backoff: the feed decides instead.
    es.onerror = () => {
      if (!this.closed) this.feed.down(this, this.delivered);
    };
    this.sources.set(order, es);
  }

  remove(order) {
    const es = this.sources.get(order);
    if (es) es.close();
    this.sources.delete(order);
  }

  close() {
    this.closed = true;
    for (const es of this.sources.values()) es.close();
    this.sources.clear();
  }
}

class PollTransport {
  constructor(feed) {
    this.feed = feed;
    this.loops = new Map();
    this.delivered = false;
    this.closed = false;
  }

  open() {
    for (const order of this.feed.orders.keys()) this.add(order);
  }

  add(order) {
    const abort = new AbortController();
    this.loops.set(order, abort);
    this.loop(order, abort.signal);
  }

  async loop(order, signal) {
    while (!this.closed && !signal.aborted) {
      const url =
        `/v1/orders/${encodeURIComponent(order)}/events?wait=25` + this.feed.resumeQuery(order);
      try {
        const r = await fetch(url, {
          headers: { Authorization: 'Bearer ' + this.feed.token },
          signal,
        });
        if (r.status === 401) {
          this.feed.expired(this);
          return;
        }
        if (!r.ok) throw new Error('HTTP ' + r.status);
        const body = await r.json();
        this.feed.arrived(this);
        for (const f of body.events || []) this.feed.frame(f);
      } catch {
        if (!this.closed && !signal.aborted) this.feed.down(this, this.delivered);
        return;
      }
    }
  }

  remove(order) {
    const abort = this.loops.get(order);
    if (abort) abort.abort();
    this.loops.delete(order);
  }

  close() {
    this.closed = true;
    for (const abort of this.loops.values()) abort.abort();
    this.loops.clear();
  }
}
