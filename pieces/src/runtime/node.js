// The Node layer of Troupe's sandbox: the globals and built-in modules npm pieces use, over
// QuickJS and the guest's natives (`__troupe_native`: hashes, URLs, base64, zlib, randomness).
// Evaluated once per piece version, before the piece loads and the memory is snapshotted.
// What cannot exist in a sandbox (fs, net, tls, child_process) loads, and throws naming the
// module when used. The host is reached only through `__troupe.host` (JSON in, JSON out).
(() => {
  'use strict';
  const N = globalThis.__troupe_native;
  const hostCall = (request) => {
    const raw = globalThis.__troupe.host(JSON.stringify(request));
    if (raw == null) throw new Error(`${request.op} is not available here`);
    return JSON.parse(raw);
  };
  const G = globalThis;
  G.global = G;

  const unavailable = (module, what) => {
    const err = new Error(`${module}${what ? '.' + what : ''} is not available in Troupe's sandbox: pieces reach the network only over HTTP(S), and have no file system, sockets or processes`);
    err.code = 'ERR_TROUPE_SANDBOX';
    return err;
  };

  // ---- events ----
  class EventEmitter {
    constructor() { this._events = Object.create(null); this._maxListeners = 10; }
    _list(name) { if (!this._events) this._events = Object.create(null); return this._events[name] || (this._events[name] = []); }
    on(name, fn) { this._list(name).push(fn); return this; }
    addListener(name, fn) { return this.on(name, fn); }
    prependListener(name, fn) { this._list(name).unshift(fn); return this; }
    once(name, fn) { const w = (...a) => { this.off(name, w); fn.apply(this, a); }; w.listener = fn; return this.on(name, w); }
    prependOnceListener(name, fn) { const w = (...a) => { this.off(name, w); fn.apply(this, a); }; w.listener = fn; return this.prependListener(name, w); }
    off(name, fn) { const l = this._list(name); const i = l.findIndex((x) => x === fn || x.listener === fn); if (i >= 0) l.splice(i, 1); return this; }
    removeListener(name, fn) { return this.off(name, fn); }
    removeAllListeners(name) { if (name === undefined) this._events = Object.create(null); else delete this._events[name]; return this; }
    emit(name, ...args) {
      const l = this._events && this._events[name];
      if (!l || l.length === 0) { if (name === 'error') throw args[0] instanceof Error ? args[0] : new Error(String(args[0])); return false; }
      for (const fn of [...l]) fn.apply(this, args);
      return true;
    }
    listeners(name) { return [...this._list(name)].map((f) => f.listener || f); }
    rawListeners(name) { return [...this._list(name)]; }
    listenerCount(name) { return this._list(name).length; }
    eventNames() { return Object.keys(this._events || {}).filter((k) => this._events[k].length > 0); }
    setMaxListeners(n) { this._maxListeners = n; return this; }
    getMaxListeners() { return this._maxListeners; }
  }
  EventEmitter.EventEmitter = EventEmitter;
  EventEmitter.defaultMaxListeners = 10;
  EventEmitter.once = (emitter, name) => new Promise((resolve, reject) => {
    emitter.once(name, (...a) => resolve(a));
    if (name !== 'error') emitter.once('error', reject);
  });
  EventEmitter.setMaxListeners = () => {};
  EventEmitter.errorMonitor = Symbol('events.errorMonitor');

  // ---- text, base64, Buffer ----
  class TextEncoder {
    get encoding() { return 'utf-8'; }
    encode(s = '') { return N.utf8Encode(String(s)); }
    encodeInto(s, dest) { const b = this.encode(s); const n = Math.min(b.length, dest.length); dest.set(b.subarray(0, n)); return { read: s.length, written: n }; }
  }
  const u8 = (data) => {
    if (data instanceof Uint8Array) return data;
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    throw new TypeError('The "input" argument must be an ArrayBuffer or ArrayBufferView');
  };
  class TextDecoder {
    constructor(label = 'utf-8') { this.encoding = String(label).toLowerCase().replace('utf8', 'utf-8'); }
    decode(data) {
      if (data == null) return '';
      const b = u8(data);
      return this.encoding === 'utf-8' ? N.utf8Decode(b) : Buffer.from(b).toString(this.encoding);
    }
  }
  G.TextEncoder = TextEncoder;
  G.TextDecoder = TextDecoder;

  const latin1 = (b) => { let s = ''; for (let i = 0; i < b.length; i += 4096) s += String.fromCharCode.apply(null, b.subarray(i, i + 4096)); return s; };
  const hexOf = (b) => { let s = ''; for (let i = 0; i < b.length; i++) s += (b[i] < 16 ? '0' : '') + b[i].toString(16); return s; };
  const encodingOf = (enc) => {
    const e = String(enc || 'utf8').toLowerCase();
    if (e === 'utf-8') return 'utf8';
    if (e === 'binary') return 'latin1';
    if (e === 'ucs2' || e === 'ucs-2' || e === 'utf-16le') return 'utf16le';
    if (['utf8', 'hex', 'base64', 'base64url', 'latin1', 'ascii', 'utf16le'].includes(e)) return e;
    throw new TypeError(`Unknown encoding: ${enc}`);
  };
  const fromString = (s, enc) => {
    switch (encodingOf(enc)) {
      case 'utf8': return N.utf8Encode(s);
      case 'hex': { const n = s.length >>> 1; const out = new Uint8Array(n); for (let i = 0; i < n; i++) { const v = parseInt(s.substr(i * 2, 2), 16); if (Number.isNaN(v)) return out.subarray(0, i); out[i] = v; } return out; }
      case 'base64': case 'base64url': return N.base64Decode(s);
      case 'latin1': case 'ascii': { const out = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i) & 255; return out; }
      case 'utf16le': { const out = new Uint8Array(s.length * 2); for (let i = 0; i < s.length; i++) { const c = s.charCodeAt(i); out[i * 2] = c & 255; out[i * 2 + 1] = c >> 8; } return out; }
    }
  };
  const toString = (b, enc) => {
    switch (encodingOf(enc)) {
      case 'utf8': return N.utf8Decode(b);
      case 'hex': return hexOf(b);
      case 'base64': return N.base64Encode(b, false);
      case 'base64url': return N.base64Encode(b, true);
      case 'latin1': return latin1(b);
      case 'ascii': return latin1(b.map((c) => c & 127));
      case 'utf16le': { let s = ''; for (let i = 0; i + 1 < b.length; i += 2) s += String.fromCharCode(b[i] | (b[i + 1] << 8)); return s; }
    }
  };
  class Buffer extends Uint8Array {
    static from(value, encOrOffset, length) {
      if (typeof value === 'string') return Buffer._wrap(fromString(value, encOrOffset));
      if (value instanceof ArrayBuffer) return new Buffer(value, encOrOffset || 0, length === undefined ? value.byteLength - (encOrOffset || 0) : length);
      if (ArrayBuffer.isView(value)) { const b = new Buffer(value.byteLength); b.set(u8(value)); return b; }
      if (Array.isArray(value)) { const b = new Buffer(value.length); for (let i = 0; i < value.length; i++) b[i] = value[i] & 255; return b; }
      if (value && value.type === 'Buffer' && Array.isArray(value.data)) return Buffer.from(value.data);
      if (value && typeof value.valueOf === 'function' && value.valueOf() !== value) return Buffer.from(value.valueOf(), encOrOffset, length);
      throw new TypeError('The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object.');
    }
    static _wrap(bytes) { return new Buffer(bytes.buffer, bytes.byteOffset, bytes.byteLength); }
    static alloc(n, fill, enc) { const b = new Buffer(n); if (fill !== undefined) b.fill(fill, 0, n, enc); return b; }
    static allocUnsafe(n) { return new Buffer(n); }
    static allocUnsafeSlow(n) { return new Buffer(n); }
    static isBuffer(b) { return b instanceof Buffer; }
    static isEncoding(e) { try { encodingOf(e); return true; } catch (_) { return false; } }
    static byteLength(v, enc) { if (typeof v === 'string') return fromString(v, enc).length; return v.byteLength; }
    static concat(list, total) {
      const len = total === undefined ? list.reduce((n, b) => n + b.length, 0) : total;
      const out = Buffer.alloc(len); let at = 0;
      for (const b of list) { if (at >= len) break; const part = u8(b).subarray(0, len - at); out.set(part, at); at += part.length; }
      return out;
    }
    static compare(a, b) { return Buffer.from(a).compare(b); }
    toString(enc, start = 0, end = this.length) { return toString(this.subarray(start, end), enc); }
    toJSON() { return { type: 'Buffer', data: Array.from(this) }; }
    equals(o) { return this.compare(o) === 0; }
    compare(o) { const b = u8(o); const n = Math.min(this.length, b.length); for (let i = 0; i < n; i++) if (this[i] !== b[i]) return this[i] < b[i] ? -1 : 1; return this.length === b.length ? 0 : this.length < b.length ? -1 : 1; }
    slice(s, e) { return this.subarray(s, e); }
    subarray(s, e) { const v = Uint8Array.prototype.subarray.call(this, s, e); return new Buffer(v.buffer, v.byteOffset, v.byteLength); }
    write(str, offset = 0, length, enc) {
      if (typeof offset === 'string') { enc = offset; offset = 0; } else if (typeof length === 'string') { enc = length; length = undefined; }
      const b = fromString(str, enc); const n = Math.min(b.length, this.length - offset, length === undefined ? Infinity : length);
      this.set(b.subarray(0, n), offset); return n;
    }
    fill(v, start = 0, end = this.length, enc) {
      if (typeof start === 'string') { enc = start; start = 0; end = this.length; }
      if (typeof v === 'number') return Uint8Array.prototype.fill.call(this, v & 255, start, end);
      const b = typeof v === 'string' ? fromString(v, enc) : u8(v);
      if (b.length === 0) return Uint8Array.prototype.fill.call(this, 0, start, end);
      for (let i = start, j = 0; i < end; i++, j = (j + 1) % b.length) this[i] = b[j];
      return this;
    }
    copy(target, tStart = 0, sStart = 0, sEnd = this.length) { const part = this.subarray(sStart, Math.min(sEnd, sStart + target.length - tStart)); target.set(part, tStart); return part.length; }
    indexOf(v, from = 0, enc) { const b = typeof v === 'number' ? [v] : typeof v === 'string' ? fromString(v, enc) : u8(v); outer: for (let i = from < 0 ? Math.max(0, this.length + from) : from; i <= this.length - b.length; i++) { for (let j = 0; j < b.length; j++) if (this[i + j] !== b[j]) continue outer; return i; } return -1; }
    includes(v, from, enc) { return this.indexOf(v, from, enc) !== -1; }
    _view() { return new DataView(this.buffer, this.byteOffset, this.byteLength); }
    readUInt8(o = 0) { return this[o]; }
    readInt8(o = 0) { return this._view().getInt8(o); }
    readUInt16BE(o = 0) { return this._view().getUint16(o); }
    readUInt16LE(o = 0) { return this._view().getUint16(o, true); }
    readInt16BE(o = 0) { return this._view().getInt16(o); }
    readInt16LE(o = 0) { return this._view().getInt16(o, true); }
    readUInt32BE(o = 0) { return this._view().getUint32(o); }
    readUInt32LE(o = 0) { return this._view().getUint32(o, true); }
    readInt32BE(o = 0) { return this._view().getInt32(o); }
    readInt32LE(o = 0) { return this._view().getInt32(o, true); }
    readFloatBE(o = 0) { return this._view().getFloat32(o); }
    readFloatLE(o = 0) { return this._view().getFloat32(o, true); }
    readDoubleBE(o = 0) { return this._view().getFloat64(o); }
    readDoubleLE(o = 0) { return this._view().getFloat64(o, true); }
    readBigUInt64BE(o = 0) { return this._view().getBigUint64(o); }
    readBigUInt64LE(o = 0) { return this._view().getBigUint64(o, true); }
    writeUInt8(v, o = 0) { this[o] = v; return o + 1; }
    writeInt8(v, o = 0) { this._view().setInt8(o, v); return o + 1; }
    writeUInt16BE(v, o = 0) { this._view().setUint16(o, v); return o + 2; }
    writeUInt16LE(v, o = 0) { this._view().setUint16(o, v, true); return o + 2; }
    writeInt16BE(v, o = 0) { this._view().setInt16(o, v); return o + 2; }
    writeInt16LE(v, o = 0) { this._view().setInt16(o, v, true); return o + 2; }
    writeUInt32BE(v, o = 0) { this._view().setUint32(o, v); return o + 4; }
    writeUInt32LE(v, o = 0) { this._view().setUint32(o, v, true); return o + 4; }
    writeInt32BE(v, o = 0) { this._view().setInt32(o, v); return o + 4; }
    writeInt32LE(v, o = 0) { this._view().setInt32(o, v, true); return o + 4; }
    writeDoubleBE(v, o = 0) { this._view().setFloat64(o, v); return o + 8; }
    writeDoubleLE(v, o = 0) { this._view().setFloat64(o, v, true); return o + 8; }
  }
  for (const name of Object.getOwnPropertyNames(Buffer.prototype)) {
    if (/^(read|write)U?Int/.test(name)) Buffer.prototype[name.replace('UInt', 'Uint')] = Buffer.prototype[name];
  }
  Buffer.poolSize = 8192;
  G.Buffer = Buffer;
  G.atob = (s) => latin1(N.base64Decode(String(s)));
  G.btoa = (s) => { s = String(s); for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 255) throw new Error('Invalid character'); return N.base64Encode(fromString(s, 'latin1'), false); };

  // ---- URL ----
  class URLSearchParams {
    constructor(init) {
      this._list = [];
      if (init == null) return;
      if (init instanceof URLSearchParams) this._list = init._list.map((p) => [...p]);
      else if (typeof init === 'string') this._parse(init);
      else if (typeof init[Symbol.iterator] === 'function') for (const [k, v] of init) this._list.push([String(k), String(v)]);
      else for (const k of Object.keys(init)) this._list.push([k, String(init[k])]);
    }
    _parse(s) {
      this._list = [];
      const dec = (x) => { try { return decodeURIComponent(x.replace(/\+/g, ' ')); } catch (_) { return x; } };
      for (const part of s.replace(/^\?/, '').split('&')) {
        if (!part) continue;
        const i = part.indexOf('=');
        this._list.push(i < 0 ? [dec(part), ''] : [dec(part.slice(0, i)), dec(part.slice(i + 1))]);
      }
    }
    _changed() { if (this._url) this._url._setSearch(this.toString()); }
    append(k, v) { this._list.push([String(k), String(v)]); this._changed(); }
    delete(k) { this._list = this._list.filter(([x]) => x !== String(k)); this._changed(); }
    get(k) { const p = this._list.find(([x]) => x === String(k)); return p ? p[1] : null; }
    getAll(k) { return this._list.filter(([x]) => x === String(k)).map((p) => p[1]); }
    has(k) { return this._list.some(([x]) => x === String(k)); }
    set(k, v) { const i = this._list.findIndex(([x]) => x === String(k)); if (i < 0) this._list.push([String(k), String(v)]); else { this._list[i][1] = String(v); this._list = this._list.filter(([x], j) => j <= i || x !== String(k)); } this._changed(); }
    sort() { this._list.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)); this._changed(); }
    forEach(fn, self) { for (const [k, v] of this._list) fn.call(self, v, k, this); }
    keys() { return this._list.map((p) => p[0])[Symbol.iterator](); }
    values() { return this._list.map((p) => p[1])[Symbol.iterator](); }
    entries() { return this._list.map((p) => [...p])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    get size() { return this._list.length; }
    toString() {
      const enc = (x) => encodeURIComponent(x).replace(/%20/g, '+').replace(/[!'()~]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
      return this._list.map(([k, v]) => `${enc(k)}=${enc(v)}`).join('&');
    }
  }
  class URL {
    constructor(input, base) {
      const parts = N.url(String(input), base === undefined ? undefined : String(base));
      if (!parts) { const e = new TypeError(`Invalid URL: ${input}`); e.code = 'ERR_INVALID_URL'; e.input = String(input); throw e; }
      this._set(parts);
    }
    _set(p) { this._p = p; if (this._sp) { this._sp._parse(p.search); } }
    _reparse(href) { const p = N.url(href); if (p) this._set(p); }
    _setSearch(q) { const p = this._p; this._reparse(`${p.href.split(/[?#]/)[0]}${q ? '?' + q : ''}${p.hash}`); }
    static canParse(input, base) { return N.url(String(input), base === undefined ? undefined : String(base)) != null; }
    get href() { return this._p.href; }
    set href(v) { const p = N.url(String(v)); if (!p) throw new TypeError(`Invalid URL: ${v}`); this._set(p); }
    get origin() { return this._p.origin; }
    get protocol() { return this._p.protocol; }
    set protocol(v) { const p = this._p; this._reparse(String(v).replace(/:?$/, ':') + p.href.slice(p.protocol.length)); }
    get username() { return this._p.username; }
    get password() { return this._p.password; }
    get host() { return this._p.port ? `${this._p.hostname}:${this._p.port}` : this._p.hostname; }
    get hostname() { return this._p.hostname; }
    get port() { return this._p.port; }
    get pathname() { return this._p.pathname; }
    set pathname(v) { const p = this._p; this._reparse(`${p.origin}${String(v).startsWith('/') ? '' : '/'}${v}${p.search}${p.hash}`); }
    get search() { return this._p.search; }
    set search(v) { this._setSearch(String(v).replace(/^\?/, '')); }
    get searchParams() { if (!this._sp) { this._sp = new URLSearchParams(this._p.search); this._sp._url = this; } return this._sp; }
    get hash() { return this._p.hash; }
    set hash(v) { const p = this._p; const h = String(v).replace(/^#/, ''); this._reparse(`${p.href.split('#')[0]}${h ? '#' + h : ''}`); }
    toString() { return this.href; }
    toJSON() { return this.href; }
  }
  G.URL = URL;
  G.URLSearchParams = URLSearchParams;

  // ---- process, performance, timers, crypto, misc globals ----
  const started = Date.now();
  const hr = () => (Date.now() - started);
  const processObj = new EventEmitter();
  Object.assign(processObj, {
    title: 'troupe', version: 'v20.0.0', versions: { node: '20.0.0' }, platform: 'linux', arch: 'wasm32', release: { name: 'node' },
    env: {}, argv: ['node'], execArgv: [], pid: 1, ppid: 0, browser: false, exitCode: undefined,
    cwd: () => '/', chdir: () => { throw unavailable('process', 'chdir'); }, umask: () => 0o22,
    exit: () => { throw unavailable('process', 'exit'); }, kill: () => { throw unavailable('process', 'kill'); },
    nextTick: (fn, ...args) => { Promise.resolve().then(() => fn(...args)); },
    hrtime: Object.assign((prev) => { const ms = hr(); const s = Math.floor(ms / 1000); const ns = Math.round((ms % 1000) * 1e6); if (!prev) return [s, ns]; let ds = s - prev[0], dn = ns - prev[1]; if (dn < 0) { ds--; dn += 1e9; } return [ds, dn]; }, { bigint: () => BigInt(Math.round(hr() * 1e6)) }),
    uptime: () => hr() / 1000,
    memoryUsage: Object.assign(() => ({ rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 }), { rss: () => 0 }),
    emitWarning: () => {}, binding: () => { throw unavailable('process', 'binding'); },
    stdout: { write: (s) => { console.log(String(s).replace(/\n$/, '')); return true; }, isTTY: false },
    stderr: { write: (s) => { console.error(String(s).replace(/\n$/, '')); return true; }, isTTY: false },
  });
  // axios chooses its fetch adapter when `process` is not Node's
  G.process = processObj;
  if (typeof G.performance === 'undefined') G.performance = { now: () => hr(), timeOrigin: started, mark: () => {}, measure: () => {} };
  const setTimeoutOrig = G.setTimeout;
  let intervals = new Set();
  G.setInterval = (fn, ms, ...args) => {
    // an interval runs once: a step's own time budget cannot wait on an endless timer
    const id = setTimeoutOrig(fn, ms, ...args);
    intervals.add(id);
    return id;
  };
  G.clearInterval = (id) => G.clearTimeout(id);
  G.clearImmediate = (id) => G.clearTimeout(id);
  const timerObject = (id) => ({ id, ref() { return this; }, unref() { return this; }, hasRef: () => true, refresh() { return this; }, [Symbol.toPrimitive]: () => id });
  const wrapTimer = (orig) => (fn, ms, ...args) => timerObject(orig(fn, ms, ...args));
  const clearOrig = G.clearTimeout;
  G.clearTimeout = (t) => clearOrig(t && typeof t === 'object' ? t.id : t);
  G.clearInterval = G.clearTimeout;
  G.clearImmediate = G.clearTimeout;
  // a timer waits in real time (bounded by the step's deadline, on the host) before it runs
  G.setTimeout = wrapTimer((fn, ms, ...args) => {
    const due = Date.now() + (Number(ms) || 0);
    return setTimeoutOrig(() => {
      const wait = due - Date.now();
      if (wait > 0) hostCall({ op: 'sleep', ms: wait });
      fn(...args);
    }, ms);
  });
  G.setInterval = wrapTimer(G.setInterval);
  G.setImmediate = wrapTimer((fn, ...args) => setTimeoutOrig(fn, 0, ...args));
  if (typeof G.structuredClone === 'undefined') G.structuredClone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

  const randomBytes = (n) => Buffer._wrap(N.random(n));
  const webcrypto = {
    getRandomValues(arr) { const b = N.random(arr.byteLength); new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength).set(b); return arr; },
    randomUUID() { const b = N.random(16); b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80; const h = hexOf(b); return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`; },
    get subtle() { throw unavailable('crypto', 'subtle'); },
  };
  if (typeof G.crypto === 'undefined') G.crypto = webcrypto;

  // ---- AbortController, EventTarget, Event ----
  class Event { constructor(type, init) { this.type = type; this.defaultPrevented = false; Object.assign(this, init || {}); } preventDefault() { this.defaultPrevented = true; } stopPropagation() {} }
  class EventTarget {
    constructor() { this._l = new Map(); }
    addEventListener(t, fn, opts) { if (!fn) return; const l = this._l.get(t) || []; l.push({ fn, once: !!(opts && opts.once) }); this._l.set(t, l); }
    removeEventListener(t, fn) { const l = this._l.get(t); if (l) this._l.set(t, l.filter((x) => x.fn !== fn)); }
    dispatchEvent(e) { const l = this._l.get(e.type) || []; e.target = this; for (const x of [...l]) { if (x.once) this.removeEventListener(e.type, x.fn); typeof x.fn === 'function' ? x.fn.call(this, e) : x.fn.handleEvent(e); } const h = this['on' + e.type]; if (typeof h === 'function') h.call(this, e); return !e.defaultPrevented; }
  }
  class AbortSignal extends EventTarget {
    constructor() { super(); this.aborted = false; this.reason = undefined; this.onabort = null; }
    throwIfAborted() { if (this.aborted) throw this.reason; }
    static abort(reason) { const c = new AbortController(); c.abort(reason); return c.signal; }
    static timeout(ms) { const c = new AbortController(); setTimeoutOrig(() => c.abort(domError('The operation was aborted due to timeout', 'TimeoutError')), ms); return c.signal; }
    static any(signals) { const c = new AbortController(); for (const s of signals) { if (s.aborted) { c.abort(s.reason); break; } s.addEventListener('abort', () => c.abort(s.reason)); } return c.signal; }
  }
  const domError = (message, name) => { const e = new Error(message); e.name = name; return e; };
  class AbortController {
    constructor() { this.signal = new AbortSignal(); }
    abort(reason) { const s = this.signal; if (s.aborted) return; s.aborted = true; s.reason = reason === undefined ? domError('This operation was aborted', 'AbortError') : reason; s.dispatchEvent(new Event('abort')); }
  }
  G.Event = Event;
  G.EventTarget = EventTarget;
  G.AbortController = AbortController;
  G.AbortSignal = AbortSignal;
  G.DOMException = class DOMException extends Error { constructor(message, name) { super(message); this.name = name || 'Error'; } };

  // ---- Blob, File, FormData ----
  const bytesOf = (part) => {
    if (part instanceof Blob) return part._bytes;
    if (typeof part === 'string') return N.utf8Encode(part);
    return u8(part);
  };
  class Blob {
    constructor(parts = [], opts = {}) { this._bytes = Buffer.concat(parts.map(bytesOf)); this.type = String(opts.type || '').toLowerCase(); }
    get size() { return this._bytes.length; }
    async text() { return N.utf8Decode(this._bytes); }
    async arrayBuffer() { return this._bytes.slice().buffer; }
    async bytes() { return new Uint8Array(this._bytes); }
    slice(s, e, type) { const b = new Blob([], { type }); b._bytes = this._bytes.subarray(s, e); return b; }
    stream() { return streamOf(this._bytes); }
    get [Symbol.toStringTag]() { return 'Blob'; }
  }
  class File extends Blob {
    constructor(parts, name, opts = {}) { super(parts, opts); this.name = String(name); this.lastModified = opts.lastModified || Date.now(); }
    get [Symbol.toStringTag]() { return 'File'; }
  }
  class FormData {
    constructor() { this._list = []; }
    append(k, v, filename) { this._list.push([String(k), v instanceof Blob ? (v instanceof File && filename === undefined ? v : new File([v], filename || (v.name || 'blob'), { type: v.type })) : String(v)]); }
    set(k, v, f) { this.delete(k); this.append(k, v, f); }
    delete(k) { this._list = this._list.filter(([x]) => x !== String(k)); }
    get(k) { const p = this._list.find(([x]) => x === String(k)); return p ? p[1] : null; }
    getAll(k) { return this._list.filter(([x]) => x === String(k)).map((p) => p[1]); }
    has(k) { return this._list.some(([x]) => x === String(k)); }
    forEach(fn, self) { for (const [k, v] of this._list) fn.call(self, v, k, this); }
    entries() { return this._list[Symbol.iterator](); }
    keys() { return this._list.map((p) => p[0])[Symbol.iterator](); }
    values() { return this._list.map((p) => p[1])[Symbol.iterator](); }
    [Symbol.iterator]() { return this.entries(); }
    get [Symbol.toStringTag]() { return 'FormData'; }
    _encode() {
      const boundary = '----TroupeFormBoundary' + hexOf(N.random(12));
      const chunks = [];
      for (const [k, v] of this._list) {
        const name = k.replace(/"/g, '%22');
        if (v instanceof File) chunks.push(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${v.name.replace(/"/g, '%22')}"\r\nContent-Type: ${v.type || 'application/octet-stream'}\r\n\r\n`, v._bytes, '\r\n');
        else chunks.push(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${v}\r\n`);
      }
      chunks.push(`--${boundary}--\r\n`);
      return { bytes: Buffer.concat(chunks.map(bytesOf)), type: `multipart/form-data; boundary=${boundary}` };
    }
  }
  G.Blob = Blob;
  G.File = File;
  G.FormData = FormData;

  // ---- ReadableStream (enough for bodies read whole) ----
  class ReadableStream {
    constructor(source = {}) {
      this._chunks = []; this._closed = false; this._error = null; this.locked = false;
      const controller = { enqueue: (c) => this._chunks.push(c), close: () => { this._closed = true; }, error: (e) => { this._error = e; }, desiredSize: 1 };
      this._source = source;
      if (source.start) source.start(controller);
      this._controller = controller;
    }
    getReader() {
      this.locked = true;
      return {
        read: async () => {
          while (this._chunks.length === 0 && !this._closed && !this._error && this._source.pull) await this._source.pull(this._controller);
          if (this._error) throw this._error;
          if (this._chunks.length) return { done: false, value: this._chunks.shift() };
          return { done: true, value: undefined };
        },
        releaseLock: () => { this.locked = false; },
        cancel: async () => { this._closed = true; this._chunks = []; },
        closed: Promise.resolve(),
      };
    }
    async cancel() { this._closed = true; this._chunks = []; }
    async *[Symbol.asyncIterator]() { const r = this.getReader(); for (;;) { const { done, value } = await r.read(); if (done) return; yield value; } }
  }
  const streamOf = (bytes) => new ReadableStream({ start(c) { if (bytes.length) c.enqueue(bytes); c.close(); } });
  const readAll = async (stream) => { const parts = []; for await (const c of stream) parts.push(typeof c === 'string' ? N.utf8Encode(c) : u8(c)); return Buffer.concat(parts); };
  G.ReadableStream = ReadableStream;

  // ---- fetch over the host ----
  const PreludeHeaders = G.Headers;
  class Headers extends PreludeHeaders {
    constructor(init) { super(init instanceof PreludeHeaders ? [...init.map] : init && typeof init[Symbol.iterator] === 'function' && !Array.isArray(init) ? [...init] : init); }
    append(k, v) { const key = String(k).toLowerCase(); const old = this.map.get(key); this.map.set(key, old === undefined ? String(v) : `${old}, ${v}`); }
    delete(k) { this.map.delete(String(k).toLowerCase()); }
    keys() { return this.map.keys(); }
    values() { return this.map.values(); }
    getSetCookie() { const v = this.get('set-cookie'); return v ? [v] : []; }
  }
  // a body, normalised: bytes and the content type it implies
  const bodyOf = async (body) => {
    if (body == null) return { bytes: null, type: null };
    if (typeof body === 'string') return { bytes: N.utf8Encode(body), type: 'text/plain;charset=UTF-8' };
    if (body instanceof URLSearchParams) return { bytes: N.utf8Encode(body.toString()), type: 'application/x-www-form-urlencoded;charset=UTF-8' };
    if (body instanceof FormData) return body._encode();
    if (body instanceof Blob) return { bytes: body._bytes, type: body.type || null };
    if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return { bytes: u8(body), type: null };
    if (body instanceof ReadableStream || (body && typeof body[Symbol.asyncIterator] === 'function')) return { bytes: await readAll(body), type: null };
    if (body && typeof body.getBuffer === 'function') return { bytes: body.getBuffer(), type: body.getHeaders ? body.getHeaders()['content-type'] : null };
    return { bytes: N.utf8Encode(String(body)), type: 'text/plain;charset=UTF-8' };
  };
  class Body {
    get bodyUsed() { return this._used; }
    async _bytes() { if (this._used) throw new TypeError('Body is unusable: Body has already been read'); this._used = true; const b = await this._payload; return b.bytes || new Uint8Array(0); }
    async text() { return N.utf8Decode(await this._bytes()); }
    async json() { return JSON.parse(await this.text()); }
    async arrayBuffer() { const b = await this._bytes(); return b.slice().buffer; }
    async bytes() { return new Uint8Array(await this._bytes()); }
    async blob() { return new Blob([await this._bytes()], { type: this.headers.get('content-type') || '' }); }
    async formData() { const f = new FormData(); new URLSearchParams(await this.text()).forEach((v, k) => f.append(k, v)); return f; }
  }
  class Request extends Body {
    constructor(input, init = {}) {
      super();
      const from = input instanceof Request ? input : null;
      this.url = from ? from.url : new URL(String(input)).href;
      this.method = String(init.method || (from && from.method) || 'GET').toUpperCase();
      this.headers = new Headers(init.headers || (from && from.headers));
      this.signal = init.signal || (from && from.signal) || null;
      this.redirect = init.redirect || 'follow';
      this.credentials = init.credentials || 'same-origin';
      // reading `duplex` is what axios probes for request streams
      void init.duplex;
      const body = init.body !== undefined ? init.body : from ? from._raw : null;
      this._raw = body;
      this._payload = bodyOf(body).then((p) => { if (p.type && !this.headers.has('content-type')) this.headers.set('content-type', p.type); return p; });
      this._used = false;
      if (body instanceof FormData || typeof body === 'string' || body instanceof URLSearchParams) { /* type set when read */ }
      if (typeof body === 'string' && !this.headers.has('content-type')) this.headers.set('content-type', 'text/plain;charset=UTF-8');
      if (body instanceof URLSearchParams && !this.headers.has('content-type')) this.headers.set('content-type', 'application/x-www-form-urlencoded;charset=UTF-8');
    }
    get body() { return this._raw == null ? null : this._raw instanceof ReadableStream ? this._raw : null; }
    clone() { return new Request(this); }
  }
  class Response extends Body {
    constructor(body, init = {}) {
      super();
      this.status = init.status === undefined ? 200 : init.status;
      this.statusText = init.statusText || '';
      this.headers = new Headers(init.headers);
      this.url = init.url || '';
      this.redirected = !!init.redirected;
      this.type = 'basic';
      this.ok = this.status >= 200 && this.status < 300;
      this._payload = bodyOf(body);
      this._used = false;
      this._raw = body;
    }
    get body() { if (this._raw == null) return null; if (!this._stream) { const self = this; this._stream = new ReadableStream({ async pull(c) { c.enqueue(await self._bytes()); c.close(); } }); } return this._stream; }
    clone() { const r = new Response(null, this); r._payload = this._payload; return r; }
    static json(v, init = {}) { const h = new Headers(init.headers); if (!h.has('content-type')) h.set('content-type', 'application/json'); return new Response(JSON.stringify(v), { ...init, headers: h }); }
    static error() { return new Response(null, { status: 0 }); }
    static redirect(url, status = 302) { return new Response(null, { status, headers: { location: String(url) } }); }
  }
  G.Headers = Headers;
  G.Request = Request;
  G.Response = Response;
  G.fetch = async (input, init = {}) => {
    const request = input instanceof Request && Object.keys(init).length === 0 ? input : new Request(input, init);
    if (request.signal && request.signal.aborted) throw request.signal.reason;
    const payload = await request._payload;
    const headers = {};
    request.headers.forEach((v, k) => { headers[k] = v; });
    const reply = hostCall({
      op: 'fetch', url: request.url, method: request.method, headers, binary: true,
      bodyBase64: payload.bytes ? N.base64Encode(payload.bytes, false) : null, redirect: request.redirect,
    });
    if (!reply.ok) { const e = new TypeError(`fetch failed: ${reply.error}`); e.cause = new Error(reply.error); e.cause.code = reply.code || 'ERR_TROUPE_EGRESS'; throw e; }
    return new Response(N.base64Decode(reply.bodyBase64 || ''), { status: reply.status, statusText: reply.statusText, headers: reply.headers, url: reply.url || request.url, redirected: !!reply.redirected });
  };

  // ---- built-in modules ----
  const builtins = Object.create(null);
  const define = (name, make) => { let made; builtins[name] = () => (made === undefined ? (made = make()) : made); };

  define('events', () => EventEmitter);
  define('buffer', () => ({ Buffer, Blob, File, atob: G.atob, btoa: G.btoa, constants: { MAX_LENGTH: 2 ** 31 - 1, MAX_STRING_LENGTH: 2 ** 29 }, kMaxLength: 2 ** 31 - 1, SlowBuffer: Buffer }));
  define('timers', () => ({ setTimeout: G.setTimeout, clearTimeout: G.clearTimeout, setInterval: G.setInterval, clearInterval: G.clearInterval, setImmediate: G.setImmediate, clearImmediate: G.clearImmediate }));
  define('timers/promises', () => ({ setTimeout: (ms, v) => new Promise((r) => G.setTimeout(() => r(v), ms)), setImmediate: (v) => new Promise((r) => G.setImmediate(() => r(v))) }));
  define('process', () => processObj);
  define('url', () => {
    const parse = (s, parseQuery) => {
      const out = { protocol: null, slashes: null, auth: null, host: null, port: null, hostname: null, hash: null, search: null, query: null, pathname: null, path: null, href: s };
      let u;
      try { u = new URL(s); } catch (_) {
        const [p, q] = String(s).split('?');
        out.pathname = p; out.search = q ? '?' + q : null; out.query = parseQuery ? Object.fromEntries(new URLSearchParams(q || '')) : (q || null); out.path = s;
        return out;
      }
      Object.assign(out, { protocol: u.protocol, slashes: true, auth: u.username ? (u.password ? `${u.username}:${u.password}` : u.username) : null, host: u.host, port: u.port || null, hostname: u.hostname, hash: u.hash || null, search: u.search || null, pathname: u.pathname, path: u.pathname + u.search, href: u.href });
      out.query = parseQuery ? Object.fromEntries(u.searchParams) : (u.search ? u.search.slice(1) : null);
      return out;
    };
    const format = (o) => {
      if (typeof o === 'string') return o;
      if (o instanceof URL) return o.href;
      const proto = o.protocol ? o.protocol.replace(/:?$/, ':') : '';
      const host = o.host || (o.hostname ? o.hostname + (o.port ? ':' + o.port : '') : '');
      let search = o.search || (o.query && typeof o.query === 'object' ? '?' + new URLSearchParams(o.query).toString() : o.query ? '?' + o.query : '');
      if (search === '?') search = '';
      return `${proto}${host || proto === 'file:' ? '//' : ''}${o.auth ? o.auth + '@' : ''}${host}${o.pathname || ''}${search}${o.hash || ''}`;
    };
    return { URL, URLSearchParams, parse, format, resolve: (from, to) => new URL(to, new URL(from, 'resolve://')).href.replace(/^resolve:\/\//, ''), fileURLToPath: (u) => new URL(String(u)).pathname, pathToFileURL: (p) => new URL('file://' + p), domainToASCII: (d) => d };
  });
  define('querystring', () => {
    const escape = (s) => encodeURIComponent(s);
    const unescape = (s) => { try { return decodeURIComponent(s); } catch (_) { return s; } };
    const stringify = (obj, sep = '&', eq = '=') => Object.keys(obj || {}).map((k) => { const v = obj[k]; const ks = escape(k) + eq; if (Array.isArray(v)) return v.map((x) => ks + escape(x == null ? '' : String(x))).join(sep); return ks + escape(v == null ? '' : typeof v === 'object' ? '' : String(v)); }).filter(Boolean).join(sep);
    const parse = (str, sep = '&', eq = '=') => { const out = Object.create(null); if (!str) return out; for (const part of String(str).split(sep)) { if (!part) continue; const i = part.indexOf(eq); const k = unescape((i < 0 ? part : part.slice(0, i)).replace(/\+/g, ' ')); const v = i < 0 ? '' : unescape(part.slice(i + 1).replace(/\+/g, ' ')); if (k in out) { if (Array.isArray(out[k])) out[k].push(v); else out[k] = [out[k], v]; } else out[k] = v; } return out; };
    return { stringify, parse, encode: stringify, decode: parse, escape, unescape };
  });
  define('path', () => {
    const normalizeArray = (parts, allowAbove) => { const res = []; for (const p of parts) { if (!p || p === '.') continue; if (p === '..') { if (res.length && res[res.length - 1] !== '..') res.pop(); else if (allowAbove) res.push('..'); } else res.push(p); } return res; };
    const normalize = (p) => { const abs = p.startsWith('/'); const trail = p.endsWith('/'); let out = normalizeArray(p.split('/'), !abs).join('/'); if (!out && !abs) out = '.'; if (out && trail) out += '/'; return (abs ? '/' : '') + out; };
    const join = (...ps) => normalize(ps.filter((x) => x !== '').join('/') || '.');
    const resolve = (...ps) => { let r = ''; for (let i = ps.length - 1; i >= 0 && !r.startsWith('/'); i--) r = ps[i] + (r ? '/' + r : ''); if (!r.startsWith('/')) r = '/' + r; const n = normalize(r); return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n; };
    const basename = (p, ext) => { let b = p.replace(/\/+$/, ''); b = b.slice(b.lastIndexOf('/') + 1); if (ext && b.endsWith(ext) && b !== ext) b = b.slice(0, -ext.length); return b; };
    const dirname = (p) => { const s = p.replace(/\/+$/, ''); const i = s.lastIndexOf('/'); return i < 0 ? '.' : i === 0 ? '/' : s.slice(0, i); };
    const extname = (p) => { const b = basename(p); const i = b.lastIndexOf('.'); return i <= 0 ? '' : b.slice(i); };
    const relative = (from, to) => { const f = resolve(from).split('/').filter(Boolean); const t = resolve(to).split('/').filter(Boolean); let i = 0; while (i < f.length && i < t.length && f[i] === t[i]) i++; return [...f.slice(i).map(() => '..'), ...t.slice(i)].join('/'); };
    const parse = (p) => { const base = basename(p); const ext = extname(p); return { root: p.startsWith('/') ? '/' : '', dir: dirname(p), base, ext, name: ext ? base.slice(0, -ext.length) : base }; };
    const format = (o) => (o.dir ? o.dir + '/' : o.root || '') + (o.base || (o.name || '') + (o.ext || ''));
    const posix = { sep: '/', delimiter: ':', normalize, join, resolve, basename, dirname, extname, relative, parse, format, isAbsolute: (p) => p.startsWith('/'), toNamespacedPath: (p) => p };
    posix.posix = posix; posix.win32 = posix;
    return posix;
  });
  define('os', () => ({ EOL: '\n', platform: () => 'linux', type: () => 'Linux', release: () => '6.0.0', arch: () => 'wasm32', hostname: () => 'troupe', homedir: () => '/', tmpdir: () => '/tmp', cpus: () => [], totalmem: () => 0, freemem: () => 0, uptime: () => 0, loadavg: () => [0, 0, 0], networkInterfaces: () => ({}), userInfo: () => ({ username: 'troupe', uid: 0, gid: 0, shell: null, homedir: '/' }), endianness: () => 'LE', constants: { signals: {}, errno: {} } }));
  define('tty', () => ({ isatty: () => false, ReadStream: class {}, WriteStream: class {} }));
  define('assert', () => {
    const fail = (msg, dflt) => { if (msg instanceof Error) throw msg; const e = new Error(msg || dflt); e.name = 'AssertionError'; e.code = 'ERR_ASSERTION'; throw e; };
    const deep = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    const assert = (v, msg) => { if (!v) fail(msg, 'The expression evaluated to a falsy value'); };
    Object.assign(assert, {
      ok: assert, equal: (a, b, m) => { if (a != b) fail(m, `${a} == ${b}`); }, notEqual: (a, b, m) => { if (a == b) fail(m, `${a} != ${b}`); },
      strictEqual: (a, b, m) => { if (!Object.is(a, b)) fail(m, `Expected values to be strictly equal: ${a} !== ${b}`); }, notStrictEqual: (a, b, m) => { if (Object.is(a, b)) fail(m, 'Expected values to be not strictly equal'); },
      deepEqual: (a, b, m) => { if (!deep(a, b)) fail(m, 'Expected values to be deeply equal'); }, deepStrictEqual: (a, b, m) => { if (!deep(a, b)) fail(m, 'Expected values to be deeply equal'); },
      notDeepStrictEqual: (a, b, m) => { if (deep(a, b)) fail(m, 'Expected values not to be deeply equal'); },
      fail: (m) => fail(m, 'Failed'), throws: (fn, _e, m) => { try { fn(); } catch (_) { return; } fail(m, 'Missing expected exception.'); },
      AssertionError: class AssertionError extends Error {},
    });
    assert.strict = assert;
    return assert;
  });
  define('util', () => {
    const inspect = (v, opts) => { if (typeof v === 'string') return `'${v}'`; try { return JSON.stringify(v, null, opts && opts.compact === false ? 2 : undefined) ?? String(v); } catch (_) { return String(v); } };
    inspect.custom = Symbol.for('nodejs.util.inspect.custom');
    inspect.defaultOptions = {};
    const format = (f, ...args) => {
      if (typeof f !== 'string') return [f, ...args].map((x) => (typeof x === 'string' ? x : inspect(x))).join(' ');
      let i = 0;
      let out = f.replace(/%[sdifjoO%]/g, (m) => { if (m === '%%') return '%'; if (i >= args.length) return m; const a = args[i++]; switch (m) { case '%s': return typeof a === 'string' ? a : typeof a === 'object' && a !== null ? inspect(a) : String(a); case '%d': case '%i': return String(parseInt(a, 10)); case '%f': return String(parseFloat(a)); default: return inspect(a); } });
      for (; i < args.length; i++) out += ' ' + (typeof args[i] === 'string' ? args[i] : inspect(args[i]));
      return out;
    };
    const promisify = (fn) => {
      if (fn && fn[promisify.custom]) return fn[promisify.custom];
      return function (...args) { return new Promise((resolve, reject) => fn.call(this, ...args, (err, ...values) => (err ? reject(err) : resolve(values.length > 1 ? values : values[0])))); };
    };
    promisify.custom = Symbol.for('nodejs.util.promisify.custom');
    const types = {
      isDate: (v) => v instanceof Date, isRegExp: (v) => v instanceof RegExp, isPromise: (v) => v instanceof Promise, isMap: (v) => v instanceof Map, isSet: (v) => v instanceof Set,
      isUint8Array: (v) => v instanceof Uint8Array, isTypedArray: (v) => ArrayBuffer.isView(v) && !(v instanceof DataView), isArrayBuffer: (v) => v instanceof ArrayBuffer, isAnyArrayBuffer: (v) => v instanceof ArrayBuffer,
      isArrayBufferView: (v) => ArrayBuffer.isView(v), isNativeError: (v) => v instanceof Error, isAsyncFunction: (v) => typeof v === 'function' && v.constructor && v.constructor.name === 'AsyncFunction',
      isGeneratorFunction: (v) => typeof v === 'function' && v.constructor && /GeneratorFunction/.test(v.constructor.name), isBoxedPrimitive: () => false, isProxy: () => false,
    };
    return {
      format, inspect, promisify, types, TextEncoder, TextDecoder,
      callbackify: (fn) => (...args) => { const cb = args.pop(); fn(...args).then((v) => cb(null, v), (e) => cb(e)); },
      inherits: (ctor, superCtor) => { Object.defineProperty(ctor, 'super_', { value: superCtor, writable: true, configurable: true }); Object.setPrototypeOf(ctor.prototype, superCtor.prototype); },
      deprecate: (fn) => fn, debuglog: () => Object.assign(() => {}, { enabled: false }), debug: () => () => {},
      isArray: Array.isArray, isString: (v) => typeof v === 'string', isNumber: (v) => typeof v === 'number', isObject: (v) => v !== null && typeof v === 'object', isFunction: (v) => typeof v === 'function', isBuffer: (v) => v instanceof Buffer,
      isDeepStrictEqual: (a, b) => JSON.stringify(a) === JSON.stringify(b), isError: (v) => v instanceof Error, isDate: types.isDate, isRegExp: types.isRegExp, isPrimitive: (v) => v === null || (typeof v !== 'object' && typeof v !== 'function'),
      inspectCustom: inspect.custom, stripVTControlCharacters: (s) => s.replace(/\u001b\[[0-9;]*m/g, ''),
    };
  });
  define('stream', () => {
    class Stream extends EventEmitter { pipe(dest) { this.on('data', (c) => dest.write(c)); this.on('end', () => dest.end && dest.end()); return dest; } }
    class Readable extends Stream {
      constructor(opts = {}) { super(); this._buf = []; this._ended = false; this.readable = true; this.destroyed = false; this._objectMode = !!(opts.objectMode || opts.readableObjectMode); if (opts.read) this._read = opts.read; this._flowing = null; }
      _read() {}
      push(chunk) { if (chunk === null) { this._ended = true; this._schedule(); return false; } this._buf.push(chunk); this._schedule(); return true; }
      unshift(c) { this._buf.unshift(c); }
      _schedule() { if (this._flowing && !this._sched) { this._sched = true; Promise.resolve().then(() => { this._sched = false; this._flow(); }); } }
      _flow() { while (this._flowing && this._buf.length) this.emit('data', this._buf.shift()); if (this._flowing && this._ended && !this._endEmitted) { this._endEmitted = true; this.readable = false; this.emit('end'); this.emit('close'); } if (this._flowing && !this._ended && this._buf.length === 0) this._read(); }
      on(name, fn) { super.on(name, fn); if (name === 'data' && this._flowing !== false) this.resume(); return this; }
      resume() { this._flowing = true; this._schedule(); if (!this._sched) { this._sched = true; Promise.resolve().then(() => { this._sched = false; this._read(); this._flow(); }); } return this; }
      pause() { this._flowing = false; return this; }
      isPaused() { return this._flowing === false; }
      read() { return this._buf.length ? this._buf.shift() : null; }
      setEncoding(enc) { this._enc = enc; return this; }
      destroy(err) { this.destroyed = true; if (err) this.emit('error', err); this.emit('close'); return this; }
      pipe(dest) { this.on('data', (c) => dest.write(c)); this.on('end', () => { if (dest !== processObj.stdout && dest.end) dest.end(); }); return dest; }
      async *[Symbol.asyncIterator]() { const chunks = []; let done = false; let wake = null; this.on('data', (c) => { chunks.push(c); if (wake) wake(); }); this.on('end', () => { done = true; if (wake) wake(); }); for (;;) { if (chunks.length) { yield chunks.shift(); continue; } if (done) return; await new Promise((r) => { wake = r; }); wake = null; } }
      static from(iterable) { const r = new Readable({ objectMode: true }); (async () => { for await (const c of iterable) r.push(c); r.push(null); })().catch((e) => r.destroy(e)); return r; }
    }
    class Writable extends Stream {
      constructor(opts = {}) { super(); this.writable = true; this.destroyed = false; if (opts.write) this._write = opts.write; if (opts.final) this._final = opts.final; }
      _write(chunk, enc, cb) { cb(); }
      write(chunk, enc, cb) { if (typeof enc === 'function') { cb = enc; enc = undefined; } this._write(chunk, enc || 'utf8', (err) => { if (err) this.emit('error', err); if (cb) cb(err); }); return true; }
      end(chunk, enc, cb) { if (typeof chunk === 'function') { cb = chunk; chunk = undefined; } if (chunk != null) this.write(chunk, enc); const fin = () => { this.writable = false; this.emit('finish'); this.emit('close'); if (cb) cb(); }; if (this._final) this._final((e) => (e ? this.emit('error', e) : fin())); else Promise.resolve().then(fin); return this; }
      destroy(err) { this.destroyed = true; if (err) this.emit('error', err); this.emit('close'); return this; }
      cork() {} uncork() {} setDefaultEncoding() { return this; }
    }
    class Duplex extends Readable {
      constructor(opts = {}) { super(opts); this.writable = true; if (opts.write) this._write = opts.write; if (opts.final) this._final = opts.final; }
    }
    for (const k of ['write', 'end', '_write', 'cork', 'uncork', 'setDefaultEncoding']) Duplex.prototype[k] = Writable.prototype[k];
    class Transform extends Duplex {
      constructor(opts = {}) { super(opts); if (opts.transform) this._transform = opts.transform; if (opts.flush) this._flush = opts.flush; }
      _transform(chunk, enc, cb) { cb(null, chunk); }
      _write(chunk, enc, cb) { this._transform(chunk, enc, (err, out) => { if (out != null) this.push(out); cb(err); }); }
      end(chunk, enc, cb) { if (typeof chunk === 'function') { cb = chunk; chunk = undefined; } if (chunk != null) this.write(chunk, enc); const fin = () => { this.push(null); this.emit('finish'); if (cb) cb(); }; if (this._flush) this._flush((err, out) => { if (out != null) this.push(out); if (err) this.emit('error', err); else fin(); }); else fin(); return this; }
    }
    class PassThrough extends Transform {}
    const finished = (s, cb) => { let done = false; const end = (e) => { if (!done) { done = true; cb(e); } }; s.on('end', () => end()); s.on('finish', () => end()); s.on('error', end); return () => {}; };
    const pipeline = (...streams) => { const cb = typeof streams[streams.length - 1] === 'function' ? streams.pop() : null; for (let i = 0; i + 1 < streams.length; i++) streams[i].pipe(streams[i + 1]); const last = streams[streams.length - 1]; if (cb) finished(last, cb); return last; };
    Stream.Stream = Stream; Stream.Readable = Readable; Stream.Writable = Writable; Stream.Duplex = Duplex; Stream.Transform = Transform; Stream.PassThrough = PassThrough;
    Stream.finished = finished; Stream.pipeline = pipeline;
    Stream.promises = { finished: (s) => new Promise((res, rej) => finished(s, (e) => (e ? rej(e) : res()))), pipeline: (...s) => new Promise((res, rej) => pipeline(...s, (e) => (e ? rej(e) : res()))) };
    Stream.isReadable = (s) => s instanceof Readable;
    return Stream;
  });
  define('stream/promises', () => builtins.stream().promises);
  define('stream/web', () => ({ ReadableStream }));
  // Node's (deprecated) punycode, over the guest's idna crate
  define('punycode', () => {
    const call = (op, name) => (text) => {
      const out = N.punycode(op, String(text));
      if (out == null) throw new RangeError(`punycode.${name}: cannot convert ${JSON.stringify(String(text))}`);
      return out;
    };
    const ucs2 = { decode: (s) => Array.from(String(s), (c) => c.codePointAt(0)), encode: (points) => String.fromCodePoint(...points) };
    return { version: '2.1.0', ucs2, encode: call('encode', 'encode'), decode: call('decode', 'decode'), toASCII: call('toASCII', 'toASCII'), toUnicode: call('toUnicode', 'toUnicode') };
  });
  define('string_decoder', () => ({ StringDecoder: class StringDecoder { constructor(enc) { this.enc = enc || 'utf8'; } write(b) { return typeof b === 'string' ? b : Buffer.from(b).toString(this.enc); } end(b) { return b ? this.write(b) : ''; } } }));
  define('crypto', () => {
    const toBytes = (d, enc) => (typeof d === 'string' ? fromString(d, enc) : u8(d));
    const out = (bytes, enc) => { const b = Buffer._wrap(bytes); return enc ? b.toString(enc) : b; };
    class Hash {
      constructor(alg, key) { this.alg = alg; this.key = key; this.parts = []; N.hash(alg, new Uint8Array(0)); }
      update(d, enc) { this.parts.push(toBytes(d, enc)); return this; }
      digest(enc) { const data = Buffer.concat(this.parts); return out(this.key ? N.hmac(this.alg, this.key, data) : N.hash(this.alg, data), enc); }
      copy() { const h = new Hash(this.alg, this.key); h.parts = [...this.parts]; return h; }
    }
    const timingSafeEqual = (a, b) => { if (a.length !== b.length) throw new RangeError('Input buffers must have the same byte length'); let d = 0; for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i]; return d === 0; };
    const randomInt = (min, max) => { if (max === undefined) { max = min; min = 0; } const r = new DataView(N.random(4).buffer).getUint32(0) / 4294967296; return min + Math.floor(r * (max - min)); };
    return {
      createHash: (alg) => new Hash(alg),
      createHmac: (alg, key) => { const h = new Hash(alg, typeof key === 'string' ? N.utf8Encode(key) : u8(key)); N.hmac(alg, new Uint8Array(0), new Uint8Array(0)); return h; },
      hash: (alg, data, enc = 'hex') => out(N.hash(alg, toBytes(data)), enc),
      randomBytes: (n, cb) => { const b = randomBytes(n); if (cb) { Promise.resolve().then(() => cb(null, b)); return undefined; } return b; },
      randomFillSync: (arr) => webcrypto.getRandomValues(arr), randomUUID: () => webcrypto.randomUUID(), getRandomValues: (a) => webcrypto.getRandomValues(a), randomInt,
      timingSafeEqual, webcrypto, getHashes: () => ['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512'],
      createCipheriv: () => { throw unavailable('crypto', 'createCipheriv'); }, createDecipheriv: () => { throw unavailable('crypto', 'createDecipheriv'); },
      createSign: () => { throw unavailable('crypto', 'createSign'); }, createVerify: () => { throw unavailable('crypto', 'createVerify'); },
      pbkdf2Sync: () => { throw unavailable('crypto', 'pbkdf2Sync'); }, scryptSync: () => { throw unavailable('crypto', 'scryptSync'); },
      createPublicKey: () => { throw unavailable('crypto', 'createPublicKey'); }, createPrivateKey: () => { throw unavailable('crypto', 'createPrivateKey'); },
      constants: {},
    };
  });
  define('zlib', () => {
    const run = (op) => (data, opts) => Buffer._wrap(N.zlib(op, typeof data === 'string' ? N.utf8Encode(data) : u8(data), opts && opts.level));
    const asyncOf = (sync) => (data, opts, cb) => { if (typeof opts === 'function') { cb = opts; opts = undefined; } Promise.resolve().then(() => { let r; try { r = sync(data, opts); } catch (e) { cb(e); return; } cb(null, r); }); };
    const Stream = builtins.stream();
    const streamOf = (sync) => () => { const parts = []; return new Stream.Transform({ transform(c, e, cb) { parts.push(u8(c)); cb(); }, flush(cb) { try { cb(null, sync(Buffer.concat(parts))); } catch (e) { cb(e); } } }); };
    const z = { constants: { Z_NO_FLUSH: 0, Z_PARTIAL_FLUSH: 1, Z_SYNC_FLUSH: 2, Z_FULL_FLUSH: 3, Z_FINISH: 4, Z_OK: 0, Z_BEST_SPEED: 1, Z_BEST_COMPRESSION: 9, Z_DEFAULT_COMPRESSION: -1, BROTLI_OPERATION_FLUSH: 1, BROTLI_DECODE: 1, BROTLI_ENCODE: 2 } };
    Object.assign(z, z.constants);
    for (const [name, op] of [['gzip', 'gzip'], ['gunzip', 'gunzip'], ['deflate', 'deflate'], ['inflate', 'inflate'], ['deflateRaw', 'deflateRaw'], ['inflateRaw', 'inflateRaw'], ['unzip', 'unzip'], ['brotliDecompress', 'brotliDecompress']]) {
      const sync = run(op);
      z[name + 'Sync'] = sync;
      z[name] = asyncOf(sync);
      z['create' + name[0].toUpperCase() + name.slice(1)] = streamOf(sync);
    }
    const noBrotli = () => { throw unavailable('zlib', 'brotliCompress'); };
    z.brotliCompressSync = noBrotli; z.brotliCompress = noBrotli; z.createBrotliCompress = noBrotli;
    z.createZstdDecompress = () => { throw unavailable('zlib', 'createZstdDecompress'); };
    return z;
  });
  // http/https: requests as Node makes them, carried by the host's fetch
  const httpModule = (defaultProtocol) => () => {
    const Stream = builtins.stream();
    class IncomingMessage extends Stream.Readable {
      constructor(res, body) { super(); this.statusCode = res.status; this.statusMessage = res.statusText; this.headers = {}; this.rawHeaders = []; res.headers.forEach((v, k) => { this.headers[k] = v; this.rawHeaders.push(k, v); }); this.httpVersion = '1.1'; if (body.length) this.push(Buffer._wrap(body)); this.push(null); }
      setTimeout() { return this; }
    }
    class ClientRequest extends Stream.Writable {
      constructor(url, opts, cb) {
        super();
        this._chunks = []; this._opts = opts; this._url = url; this._cb = cb; this.aborted = false; this.headers = {};
        for (const [k, v] of Object.entries(opts.headers || {})) this.headers[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
        this.method = (opts.method || 'GET').toUpperCase(); this.path = opts.path || '/';
        this.socket = new EventEmitter(); this.socket.setTimeout = () => {}; this.socket.setKeepAlive = () => {}; this.socket.setNoDelay = () => {}; this.socket.destroy = () => {};
        this.connection = this.socket;
      }
      setHeader(k, v) { this.headers[String(k).toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v); }
      getHeader(k) { return this.headers[String(k).toLowerCase()]; }
      removeHeader(k) { delete this.headers[String(k).toLowerCase()]; }
      getHeaders() { return { ...this.headers }; }
      hasHeader(k) { return String(k).toLowerCase() in this.headers; }
      setTimeout(ms, cb) { if (cb) this.once('timeout', cb); return this; }
      setNoDelay() {} setSocketKeepAlive() {} flushHeaders() {}
      abort() { this.aborted = true; this.emit('abort'); }
      destroy(err) { this.aborted = true; if (err) this.emit('error', err); this.emit('close'); return this; }
      _write(chunk, enc, cb) { this._chunks.push(typeof chunk === 'string' ? fromString(chunk, enc) : u8(chunk)); cb(); }
      end(chunk, enc, cb) {
        if (typeof chunk === 'function') { cb = chunk; chunk = undefined; }
        if (chunk != null) this._chunks.push(typeof chunk === 'string' ? fromString(chunk, enc) : u8(chunk));
        Promise.resolve().then(() => this._send()).catch((e) => this.emit('error', e));
        if (cb) this.once('finish', cb);
        return this;
      }
      async _send() {
        if (this.aborted) return;
        this.emit('finish');
        const body = this._chunks.length ? Buffer.concat(this._chunks) : null;
        let res;
        try { res = await G.fetch(this._url, { method: this.method, headers: this.headers, body: this.method === 'GET' || this.method === 'HEAD' ? null : body, redirect: 'manual' }); } catch (e) { const err = new Error(e.cause ? e.cause.message : e.message); err.code = (e.cause && e.cause.code) || 'ECONNREFUSED'; this.emit('error', err); return; }
        const bytes = new Uint8Array(await res.arrayBuffer());
        const msg = new IncomingMessage(res, bytes);
        if (this._cb) this._cb(msg);
        this.emit('response', msg);
        this.emit('close');
      }
    }
    const request = (a, b, c) => {
      let url, opts, cb;
      if (typeof a === 'string' || a instanceof URL) { url = new URL(String(a)); opts = typeof b === 'object' && b ? b : {}; cb = typeof b === 'function' ? b : c; }
      else { opts = a || {}; cb = b; const proto = opts.protocol || defaultProtocol; const host = opts.hostname || (opts.host || 'localhost').replace(/:\d+$/, ''); const port = opts.port ? `:${opts.port}` : ''; url = new URL(`${proto}//${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}${port}${opts.path || '/'}`); }
      if (opts.path && (typeof a === 'string' || a instanceof URL)) url = new URL(opts.path, url);
      const req = new ClientRequest(url.href, { ...opts, path: url.pathname + url.search }, cb);
      if (opts.auth && !req.hasHeader('authorization')) req.setHeader('authorization', 'Basic ' + Buffer.from(opts.auth).toString('base64'));
      if (opts.timeout) req.setTimeout(opts.timeout);
      return req;
    };
    const get = (...args) => { const r = request(...args); r.end(); return r; };
    class Agent extends EventEmitter { constructor(opts) { super(); this.options = opts || {}; } destroy() {} }
    const STATUS_CODES = { 200: 'OK', 201: 'Created', 204: 'No Content', 301: 'Moved Permanently', 302: 'Found', 304: 'Not Modified', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };
    return { request, get, Agent, globalAgent: new Agent(), ClientRequest, IncomingMessage, STATUS_CODES, METHODS: ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT'], createServer: () => { throw unavailable('http', 'createServer'); } };
  };
  define('http', httpModule('http:'));
  define('https', httpModule('https:'));
  const refused = (name, extra = {}) => define(name, () => new Proxy(extra, {
    get(target, key) {
      if (key in target) return target[key];
      if (key === '__esModule' || key === 'default' || typeof key === 'symbol' || key === 'then') return undefined;
      return function unavailableInSandbox() { throw unavailable(name, String(key)); };
    },
  }));
  for (const name of ['fs', 'fs/promises', 'net', 'tls', 'child_process', 'http2', 'dgram', 'cluster', 'worker_threads', 'dns', 'dns/promises', 'vm', 'v8', 'inspector', 'readline', 'repl', 'perf_hooks', 'async_hooks', 'module', 'diagnostics_channel', 'sqlite', 'wasi', 'trace_events']) {
    if (name === 'perf_hooks') { define(name, () => ({ performance: G.performance, PerformanceObserver: class {} })); continue; }
    if (name === 'async_hooks') { define(name, () => ({ AsyncLocalStorage: class AsyncLocalStorage { run(store, fn, ...a) { const prev = this._s; this._s = store; try { return fn(...a); } finally { this._s = prev; } } getStore() { return this._s; } enterWith(s) { this._s = s; } disable() {} }, AsyncResource: class AsyncResource { runInAsyncScope(fn, self, ...a) { return fn.apply(self, a); } bind(fn) { return fn; } static bind(fn) { return fn; } }, createHook: () => ({ enable() { return this; }, disable() { return this; } }), executionAsyncId: () => 0 })); continue; }
    if (name === 'diagnostics_channel') { define(name, () => ({ channel: () => ({ hasSubscribers: false, publish() {}, subscribe() {}, unsubscribe() {} }), hasSubscribers: () => false, subscribe() {}, unsubscribe() {}, tracingChannel: () => ({ hasSubscribers: false, traceSync: (fn, ctx, self, ...a) => fn.apply(self, a), tracePromise: (fn, ctx, self, ...a) => fn.apply(self, a) }) })); continue; }
    if (name === 'fs') { refused(name, { constants: { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 }, promises: new Proxy({}, { get: (_, k) => (typeof k === 'symbol' || k === 'then' ? undefined : () => Promise.reject(unavailable('fs/promises', String(k)))) }) }); continue; }
    if (name === 'module') { define(name, () => ({ createRequire: () => G.__troupe_require, builtinModules: Object.keys(builtins) })); continue; }
    refused(name);
  }
  G.__troupe_node = { builtins, hostCall, unavailable, Buffer };
})();
