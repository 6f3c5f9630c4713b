// Runs once, before the memory snapshot every execution starts from.
(() => {
  'use strict';
  const LOG_LIMIT = 64 * 1024;
  const state = { logs: [], logBytes: 0, truncated: false, timers: [], timerSeq: 0, rng: [1, 2] };
  const show = (v) => {
    if (typeof v === 'string') return v;
    if (v instanceof Error) return v.stack ? `${v.name}: ${v.message}\n${v.stack}` : `${v.name}: ${v.message}`;
    if (v === undefined || typeof v === 'function' || typeof v === 'symbol') return String(v);
    try { const s = JSON.stringify(v); return s === undefined ? String(v) : s; } catch (_) { return String(v); }
  };
  const log = (level) => (...args) => {
    if (state.truncated) return;
    const line = args.map(show).join(' ');
    if (state.logBytes + line.length > LOG_LIMIT) {
      state.logs.push({ level: 'warn', message: `[log truncated at ${LOG_LIMIT} bytes]` });
      state.truncated = true;
      return;
    }
    state.logBytes += line.length;
    state.logs.push({ level, message: line });
  };
  globalThis.console = {
    log: log('log'), info: log('info'), warn: log('warn'), error: log('error'), debug: log('debug'), trace: log('debug'),
  };
  // Timers run in due order once the microtask queue is empty, without waiting in real time:
  // the step's wall-clock budget is the host's to enforce.
  globalThis.setTimeout = (fn, ms, ...args) => {
    const id = ++state.timerSeq;
    state.timers.push({ id, due: Number(ms) || 0, seq: id, fn, args });
    return id;
  };
  globalThis.clearTimeout = (id) => { state.timers = state.timers.filter((t) => t.id !== id); };
  globalThis.setImmediate = (fn, ...args) => globalThis.setTimeout(fn, 0, ...args);
  globalThis.queueMicrotask = (fn) => { Promise.resolve().then(fn); };
  // xorshift128+, reseeded from the host on every execution (a snapshot would otherwise freeze it).
  Math.random = () => {
    let [s1, s0] = state.rng;
    state.rng[0] = s0;
    s1 ^= s1 << 23; s1 ^= s1 >>> 17; s1 ^= s0; s1 ^= s0 >>> 26;
    state.rng[1] = s1;
    return ((state.rng[0] + state.rng[1]) >>> 0) / 4294967296;
  };
  // fetch, through the host (its egress policy applies): the whole body is read at once.
  const host = globalThis.__troupe_host;
  delete globalThis.__troupe_host;
  class Headers {
    constructor(init) {
      this.map = new Map();
      const entries = init instanceof Headers ? [...init.map] : Array.isArray(init) ? init : Object.entries(init || {});
      for (const [k, v] of entries) this.map.set(String(k).toLowerCase(), String(v));
    }
    get(k) { const v = this.map.get(String(k).toLowerCase()); return v === undefined ? null : v; }
    set(k, v) { this.map.set(String(k).toLowerCase(), String(v)); }
    has(k) { return this.map.has(String(k).toLowerCase()); }
    forEach(fn) { this.map.forEach((v, k) => fn(v, k, this)); }
    entries() { return this.map.entries(); }
    [Symbol.iterator]() { return this.map.entries(); }
  }
  class Response {
    constructor(body, init) {
      this._body = body == null ? '' : String(body);
      this.status = (init && init.status) || 200;
      this.statusText = (init && init.statusText) || '';
      this.headers = new Headers(init && init.headers);
      this.url = (init && init.url) || '';
      this.ok = this.status >= 200 && this.status < 300;
    }
    async text() { return this._body; }
    async json() { return JSON.parse(this._body); }
  }
  globalThis.Headers = Headers;
  globalThis.Response = Response;
  globalThis.fetch = async (input, init = {}) => {
    const url = typeof input === 'string' ? input : String(input && input.url ? input.url : input);
    const body = init.body == null ? null : typeof init.body === 'string' ? init.body : JSON.stringify(init.body);
    const request = { op: 'fetch', url, method: String(init.method || 'GET').toUpperCase(), headers: Object.fromEntries(new Headers(init.headers)), body };
    const raw = host(JSON.stringify(request));
    if (raw == null) throw new TypeError('fetch is not available here');
    const reply = JSON.parse(raw);
    if (!reply.ok) throw new TypeError(`fetch failed: ${reply.error}`);
    return new Response(reply.body, { status: reply.status, statusText: reply.statusText, headers: reply.headers, url });
  };
  const errorOf = (e) => {
    if (e instanceof Error) return { name: e.name, message: String(e.message), stack: e.stack || '' };
    return { name: 'Error', message: show(e), stack: '' };
  };
  const encode = (ok, value) => {
    const out = { ok, logs: state.logs };
    if (ok) {
      try {
        out.value = value === undefined ? null : JSON.parse(JSON.stringify(value) ?? 'null');
      } catch (e) {
        return JSON.stringify({ ok: false, error: { name: 'TypeError', message: `the output is not JSON: ${e.message}`, stack: '' }, logs: state.logs });
      }
    } else {
      out.error = errorOf(value);
    }
    return JSON.stringify(out);
  };
  globalThis.__troupe = {
    // scripts run later (the pieces runtime) reach the host through this
    host,
    begin(seedHi, seedLo) {
      state.rng = [seedHi | 1, seedLo | 2];
      // a piece's snapshot was taken after its loading ran: nothing of that run carries over
      state.logs = []; state.logBytes = 0; state.truncated = false; state.timers = [];
    },
    runTimer() {
      if (state.timers.length === 0) return false;
      state.timers.sort((a, b) => a.due - b.due || a.seq - b.seq);
      const t = state.timers.shift();
      t.fn(...t.args);
      return true;
    },
    done: (value) => encode(true, value),
    failed: (error) => encode(false, error),
    expressions(exprs, scope) {
      // Activepieces' template helper: the values at `path` in `data`, lists flattened
      const flattenNestedKeys = (data, path) => {
        if (data !== null && typeof data === 'object' && !Array.isArray(data)) {
          for (const [k, v] of Object.entries(data)) if (k === path[0]) return flattenNestedKeys(v, path.slice(1));
        } else if (Array.isArray(data)) {
          return data.flatMap((d) => flattenNestedKeys(d, path));
        } else if (path.length === 0) {
          return [data];
        }
        return [];
      };
      const values = exprs.map((e) => {
        try {
          const f = new Function('__scope', 'flattenNestedKeys', `with (__scope) { return (${e}\n); }`);
          const v = f(scope, flattenNestedKeys);
          return { ok: true, value: v === undefined ? null : JSON.parse(JSON.stringify(v) ?? 'null') };
        } catch (err) {
          return { ok: false, error: errorOf(err).message };
        }
      });
      return encode(true, values);
    },
  };
})();
