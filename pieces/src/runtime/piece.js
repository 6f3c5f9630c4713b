// Loads an npm piece in the sandbox (CommonJS `require` over its installed packages), and
// runs its actions with Activepieces' context. Evaluated after node.js; the function this
// script evaluates to is called once, with the package tree, before the snapshot is taken.
// Later calls go through `__troupe_piece.run(request)`.
(() => {
  'use strict';
  const G = globalThis;
  const { builtins, hostCall, unavailable, Buffer } = G.__troupe_node;

  // ---- CommonJS over the lock's packages ----
  // packages: { key: { name, version, dependencies: { name: key }, files: [path], type } }
  let packages = {};
  const fileSets = {};
  const byName = {};
  const cache = Object.create(null);
  const conditions = ['node', 'require', 'default'];

  const notFound = (request, from) => {
    const e = new Error(`Cannot find module '${request}'${from ? ` from ${from}` : ''}`);
    e.code = 'MODULE_NOT_FOUND';
    return e;
  };
  const normalize = (path) => {
    const out = [];
    for (const p of path.split('/')) {
      if (!p || p === '.') continue;
      if (p === '..') out.pop(); else out.push(p);
    }
    return out.join('/');
  };
  const dirOf = (path) => { const i = path.lastIndexOf('/'); return i < 0 ? '' : path.slice(0, i); };
  const has = (key, path) => fileSets[key].has(path);
  const readText = (key, path) => {
    const reply = hostCall({ op: 'read', package: key, path });
    if (!reply.ok) throw new Error(`cannot read ${packages[key].name}/${path}: ${reply.error}`);
    return reply.text;
  };
  const packageJson = (key, dir) => {
    const path = dir ? `${dir}/package.json` : 'package.json';
    if (!has(key, path)) return null;
    try { return JSON.parse(readText(key, path)); } catch (_) { return null; }
  };
  const pickExport = (target) => {
    if (target == null) return null;
    if (typeof target === 'string') return target;
    if (Array.isArray(target)) { for (const t of target) { const r = pickExport(t); if (r) return r; } return null; }
    for (const c of conditions) if (c in target) { const r = pickExport(target[c]); if (r) return r; }
    return null;
  };
  const resolveExports = (exportsField, sub) => {
    const subpath = sub ? `./${sub}` : '.';
    let map = exportsField;
    if (typeof map === 'string' || Array.isArray(map) || !Object.keys(map).some((k) => k.startsWith('.'))) map = { '.': map };
    if (subpath in map) return pickExport(map[subpath]);
    for (const pattern of Object.keys(map)) {
      const star = pattern.indexOf('*');
      if (star < 0) continue;
      const [pre, post] = [pattern.slice(0, star), pattern.slice(star + 1)];
      if (subpath.startsWith(pre) && subpath.endsWith(post) && subpath.length >= pre.length + post.length) {
        const target = pickExport(map[pattern]);
        if (target) return target.split('*').join(subpath.slice(pre.length, subpath.length - post.length));
      }
    }
    return null;
  };
  const resolveFile = (key, path) => {
    for (const candidate of [path, `${path}.js`, `${path}.json`, `${path}.cjs`]) if (candidate && has(key, candidate)) return candidate;
    const pkg = packageJson(key, path);
    if (pkg && typeof pkg.main === 'string') {
      const main = normalize(`${path}/${pkg.main}`);
      for (const c of [main, `${main}.js`, `${main}.json`, `${main}/index.js`]) if (has(key, c)) return c;
    }
    for (const candidate of [`${path ? path + '/' : ''}index.js`, `${path ? path + '/' : ''}index.json`]) if (has(key, candidate)) return candidate;
    return null;
  };
  const resolvePackage = (key, sub) => {
    const pkg = packageJson(key, '') || {};
    if (pkg.exports != null) {
      const target = resolveExports(pkg.exports, sub);
      if (target) return resolveFile(key, normalize(target));
    }
    if (!sub) return resolveFile(key, normalize(pkg.main || 'index.js')) || resolveFile(key, '');
    return resolveFile(key, normalize(sub));
  };
  const splitBare = (request) => {
    const parts = request.split('/');
    const n = request.startsWith('@') ? 2 : 1;
    return [parts.slice(0, n).join('/'), parts.slice(n).join('/')];
  };
  const resolve = (request, fromKey, fromPath) => {
    if (request.startsWith('./') || request.startsWith('../') || request === '.' || request === '..') {
      const file = resolveFile(fromKey, normalize(`${dirOf(fromPath)}/${request}`));
      if (!file) throw notFound(request, `${packages[fromKey].name}/${fromPath}`);
      return [fromKey, file];
    }
    if (request.startsWith('/')) throw notFound(request);
    const [name, sub] = splitBare(request);
    const from = packages[fromKey];
    const key = name === from.name ? fromKey : from.dependencies[name] || byName[name];
    if (!key) throw notFound(request, `${from.name}/${fromPath}`);
    const file = resolvePackage(key, sub);
    if (!file) throw notFound(request, `${from.name}/${fromPath}`);
    return [key, file];
  };
  const load = (key, file) => {
    const id = `${key}/${file}`;
    if (id in cache) return cache[id].exports;
    const module = { id, filename: `/node_modules/${packages[key].name}/${file}`, exports: {}, loaded: false, children: [], paths: [] };
    cache[id] = module;
    const source = readText(key, file);
    if (file.endsWith('.json')) {
      module.exports = JSON.parse(source);
      module.loaded = true;
      return module.exports;
    }
    if (file.endsWith('.mjs') || (packages[key].type === 'module' && !file.endsWith('.cjs'))) {
      delete cache[id];
      throw new Error(`${packages[key].name}/${file} is an ES module; Troupe's sandbox loads pieces and their dependencies as CommonJS`);
    }
    const require = makeRequire(key, file);
    module.require = require;
    const body = source.startsWith('#!') ? '//' + source : source;
    let wrapper;
    try {
      wrapper = (0, eval)(`(function (exports, require, module, __filename, __dirname) {${body}\n})`);
    } catch (e) {
      delete cache[id];
      throw new SyntaxError(`${packages[key].name}/${file}: ${e.message}`);
    }
    try {
      wrapper.call(module.exports, module.exports, require, module, module.filename, dirOf(module.filename));
    } catch (e) {
      delete cache[id];
      // the innermost module that threw is named once: where a package fails to load
      if (e && typeof e === 'object' && !e.troupeModule) {
        try { e.troupeModule = `${packages[key].name}/${file}`; e.message = `${e.message} (loading ${e.troupeModule})`; } catch (_) { /* frozen */ }
      }
      throw e;
    }
    module.loaded = true;
    return module.exports;
  };
  const makeRequire = (key, file) => {
    const require = (request) => {
      request = String(request);
      const builtin = request.startsWith('node:') ? request.slice(5) : request;
      if (builtins[builtin]) return builtins[builtin]();
      if (request.startsWith('node:')) throw unavailable(request);
      const [k, f] = resolve(request, key, file);
      return load(k, f);
    };
    require.resolve = (request) => { const [k, f] = resolve(String(request), key, file); return `/node_modules/${packages[k].name}/${f}`; };
    require.cache = cache;
    return require;
  };

  // ---- the piece ----
  const state = { piece: null, name: '', version: '' };
  const findPiece = (exports) => {
    for (const value of Object.values(exports || {})) {
      if (value != null && typeof value === 'object' && value.constructor && value.constructor.name === 'Piece') return value;
    }
    for (const value of Object.values(exports || {})) {
      if (value != null && typeof value === 'object' && typeof value.metadata === 'function' && typeof value.getAction === 'function') return value;
    }
    return null;
  };
  const contextVersion = () => {
    const p = state.piece;
    return typeof p.getContextInfo === 'function' ? (p.getContextInfo() || {}).version : undefined;
  };

  // ---- props: Activepieces' processors and validators, per property type ----
  const isNil = (v) => v === null || v === undefined;
  const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
  const show = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
  const processors = {
    SHORT_TEXT: (v, p) => (isNil(v) ? v : v === '' && !p.required ? undefined : typeof v === 'object' ? JSON.stringify(v) : String(v)),
    NUMBER: (v) => (isNil(v) ? v : v === '' ? undefined : Number(v)),
    CHECKBOX: (v) => (typeof v === 'string' && /^(true|false)$/i.test(v) ? v.toLowerCase() === 'true' : v),
    DATE_TIME: (v) => { if (!v) return undefined; const d = new Date(typeof v === 'number' ? v : String(v)); return Number.isNaN(d.getTime()) ? undefined : d.toISOString(); },
    JSON: (v) => { if (typeof v !== 'string') return v; try { return JSON.parse(v); } catch (_) { return v; } },
    OBJECT: (v) => { if (typeof v === 'string') { try { const o = JSON.parse(v); return isPlainObject(o) ? o : undefined; } catch (_) { return undefined; } } return isPlainObject(v) ? v : undefined; },
  };
  processors.LONG_TEXT = processors.SHORT_TEXT;
  processors.SECRET_TEXT = processors.SHORT_TEXT;
  const validators = {
    SHORT_TEXT: (v, o) => (typeof v === 'string' ? null : `Expected string, received: ${show(o)}`),
    NUMBER: (v, o) => (typeof v === 'number' && !Number.isNaN(v) ? null : `Expected number, received: ${show(o)}`),
    CHECKBOX: (v, o) => (typeof v === 'boolean' ? null : `Expected boolean, received: ${show(o)}`),
    DATE_TIME: (v, o) => (typeof v === 'string' ? null : `Invalid datetime format. Expected ISO format (e.g. 2024-03-14T12:00:00.000Z), received: ${show(o)}`),
    OBJECT: (v, o) => (isPlainObject(v) ? null : `Expected object, received: ${show(o)}`),
    ARRAY: (v, o) => (Array.isArray(v) ? null : `Expected array, received: ${show(o)}`),
    FILE: (v, o) => (v !== null && typeof v === 'object' ? null : `Expected file url or base64 with mimeType, received: ${show(o)}`),
  };
  validators.LONG_TEXT = validators.SHORT_TEXT;
  validators.SECRET_TEXT = validators.SHORT_TEXT;
  const zip = (v) => {
    if (!isPlainObject(v)) return v;
    const keys = Object.keys(v);
    if (!keys.every((k) => Array.isArray(v[k]))) return v;
    const n = Math.max(0, ...keys.map((k) => v[k].length));
    return Array.from({ length: n }, (_, i) => Object.fromEntries(keys.map((k) => [k, v[k][i]])));
  };
  const fileOf = async (v) => {
    if (typeof v !== 'string') return null;
    const ApFile = class ApFile { constructor(filename, data, extension) { this.filename = filename; this.data = data; this.extension = extension; } get base64() { return this.data.toString('base64'); } };
    const m = /^data:([^;,]+)?(;base64)?,(.*)$/s.exec(v);
    if (m) { const ext = (m[1] || '').split('/')[1] || 'bin'; return new ApFile(`unknown.${ext}`, Buffer.from(m[3], m[2] ? 'base64' : 'utf8'), ext); }
    try {
      const res = await G.fetch(v);
      const data = Buffer.from(await res.arrayBuffer());
      const name = (/filename="?([^";]+)"?/.exec(res.headers.get('content-disposition') || '') || [])[1] || new URL(v).pathname.split('/').pop() || 'unknown';
      const ext = name.includes('.') ? name.split('.').pop() : undefined;
      return new ApFile(name, data, ext);
    } catch (_) { return null; }
  };
  const processProps = async (input, props, propertySettings) => {
    const out = { ...input };
    const errors = {};
    for (const [key, value] of Object.entries(input)) {
      const prop = props[key];
      if (!prop || key === 'auth') continue;
      if (prop.type === 'DYNAMIC' && propertySettings && propertySettings[key] && propertySettings[key].schema && isPlainObject(value)) {
        const r = await processProps(value, propertySettings[key].schema, null);
        out[key] = r.out;
        if (Object.keys(r.errors).length) errors[key] = r.errors;
        continue;
      }
      if (prop.type === 'ARRAY' && prop.properties) {
        const items = zip(value);
        if (Array.isArray(items)) {
          const results = [];
          const itemErrors = [];
          for (const item of items) { const r = await processProps(isPlainObject(item) ? item : {}, prop.properties, null); results.push(r.out); itemErrors.push(r.errors); }
          out[key] = results;
          if (itemErrors.some((e) => Object.keys(e).length)) errors[key] = { properties: itemErrors };
          continue;
        }
      }
      if (prop.type === 'FILE') out[key] = await fileOf(value);
      else if (processors[prop.type]) out[key] = processors[prop.type](value, prop);
    }
    for (const [key, value] of Object.entries(out)) {
      const prop = props[key];
      if (!prop || key === 'auth' || errors[key]) continue;
      const validate = validators[prop.type];
      if (prop.type === 'JSON') { if (prop.required && (isNil(value) || value === '')) errors[key] = [`Expected JSON, received: ${show(input[key])}`]; continue; }
      if (!validate || (!prop.required && isNil(value))) continue;
      const problem = validate(value, input[key]);
      if (problem) errors[key] = [problem];
    }
    return { out, errors };
  };

  // The connection's value as the piece's framework expects it: with its `type` for context
  // versions 1 and 2, the bare secret or props before.
  const authFor = (value) => {
    if (isNil(value) || contextVersion() !== undefined || !isPlainObject(value)) return value;
    if (value.type === 'SECRET_TEXT') return value.secret_text;
    if (value.type === 'CUSTOM_AUTH') return value.props;
    return value;
  };

  const StoreScope = { PROJECT: 'COLLECTION', FLOW: 'FLOW' };
  const resumeUrlOf = (base, { queryParams = {}, sync = false } = {}) =>
    `${base}${sync ? '/sync' : ''}${Object.keys(queryParams).length ? '?' + new URLSearchParams(queryParams).toString() : ''}`;
  const run = async (request) => {
    const piece = state.piece;
    const action = piece.getAction(request.action);
    if (!action) throw new Error(`Action not found: ${state.name}@${state.version} has no action ${JSON.stringify(request.action)}`);
    const input = { ...(request.input || {}) };
    const { out, errors } = await processProps(input, action.props || {}, request.propertySettings);
    if (Object.keys(errors).length) throw new Error(JSON.stringify(errors, null, 2));
    const hook = { type: 'none', tags: [], response: undefined, waitpoint: undefined, requestId: undefined };
    const call = (req) => { const r = hostCall(req); if (!r.ok) throw new Error(r.error); return r; };
    const waitpoint = (req) => {
      // a pause after generateResumeUrl waits at the URL it gave
      const r = call({ op: 'waitpoint', id: req.type === 'WEBHOOK' ? hook.requestId : undefined });
      if (req.type === 'WEBHOOK') hook.requestId = r.id;
      hook.waitpoint = { id: r.id, type: req.type, resumeDateTime: req.resumeDateTime, response: req.responseToSend };
      return { id: r.id, resumeUrl: r.resumeUrl, buildResumeUrl: (options) => resumeUrlOf(r.resumeUrl, options) };
    };
    const context = {
      ...commonContext(request),
      executionType: request.executionType || 'BEGIN',
      resumePayload: request.resumePayload,
      auth: authFor(out.auth),
      propsValue: { ...out, auth: authFor(out.auth) },
      store: storeOf(request),
      files: {
        write: async ({ fileName, data }) => call({ op: 'files.write', fileName: String(fileName), base64: Buffer.from(data).toString('base64') }).url,
      },
      serverUrl: request.server.publicUrl,
      run: {
        id: request.runId,
        stop: (params) => { hook.type = 'stopped'; hook.response = (params || {}).response || {}; },
        respond: (params) => { hook.type = 'respond'; hook.response = (params || {}).response || {}; },
        pause: (params) => {
          const meta = (params || {}).pauseMetadata || {};
          if (meta.type === 'DELAY') waitpoint({ type: 'DELAY', resumeDateTime: meta.resumeDateTime });
          else waitpoint({ type: 'WEBHOOK', responseToSend: meta.response });
          hook.type = 'paused';
        },
        createWaitpoint: async (req) => waitpoint(req || {}),
        waitForWaitpoint: () => { hook.type = 'paused'; },
      },
      generateResumeUrl: ({ queryParams = {}, sync = false } = {}) => {
        const r = call({ op: 'resumeUrl', id: hook.requestId });
        hook.requestId = r.id;
        return resumeUrlOf(r.resumeUrl, { queryParams, sync });
      },
      tags: { add: async ({ name }) => { hook.tags.push(String(name)); } },
      step: { name: request.stepName },
      output: { update: async () => {} },
    };
    const output = await action.run(context);
    return { output: output === undefined ? null : output, hook: { type: hook.type, response: hook.response, waitpoint: hook.waitpoint, tags: hook.tags } };
  };

  const clean = (value) => JSON.parse(JSON.stringify(value, (k, v) => (typeof v === 'bigint' ? String(v) : v)) ?? 'null');
  // ---- the other engine operations: dynamic props, auth validation, trigger hooks ----
  const storeOf = (request, prefix = '') => {
    const call = (req) => { const r = hostCall(req); if (!r.ok) throw new Error(r.error); return r; };
    const k = (key, scope = StoreScope.FLOW) => {
      if (typeof key !== 'string' || key.length === 0 || key.length > request.storeKeyMax) {
        const e = new Error(`Key must be a non-empty string of at most ${request.storeKeyMax} characters: ${JSON.stringify(key)}`);
        e.name = 'StorageInvalidKeyError';
        throw e;
      }
      if (scope !== StoreScope.FLOW && scope !== StoreScope.PROJECT) throw new Error(`Unknown store scope ${JSON.stringify(scope)}`);
      return { key: prefix + key, scope };
    };
    return {
      put: async (key, value, scope) => { call({ op: 'store.put', ...k(key, scope), value: value === undefined ? null : value }); return value; },
      get: async (key, scope) => { const r = call({ op: 'store.get', ...k(key, scope) }); return r.value === undefined ? null : r.value; },
      delete: async (key, scope) => { call({ op: 'store.delete', ...k(key, scope) }); },
    };
  };
  const commonContext = (request) => ({
    server: request.server || { apiUrl: '', publicUrl: '', token: '' },
    project: { id: request.projectId, externalId: async () => request.projectExternalId || undefined },
    flows: { current: { id: request.flowId, version: { id: request.flowVersionId } }, list: async () => { throw unavailable('flows', 'list'); } },
    connections: { get: async (name) => { const r = hostCall({ op: 'connection', name: String(name) }); if (!r.ok) throw new Error(r.error); return isNil(r.value) ? null : authFor(r.value); } },
  });
  const propOf = (request) => {
    const piece = state.piece;
    const owner = piece.getAction(request.actionOrTriggerName) || piece.getTrigger(request.actionOrTriggerName);
    if (!owner) throw new Error(`${state.name}@${state.version} has no action or trigger ${JSON.stringify(request.actionOrTriggerName)}`);
    const prop = (owner.props || {})[request.propertyName];
    if (!prop) throw new Error(`${request.actionOrTriggerName} has no prop ${JSON.stringify(request.propertyName)}`);
    return prop;
  };
  // Execute Property: a dropdown's options, or a dynamic prop's props
  const options = async (request) => {
    const prop = propOf(request);
    const input = { ...(request.input || {}), auth: authFor(request.input && request.input.auth) };
    const ctx = { ...commonContext(request), searchValue: request.searchValue, store: storeOf(request) };
    if (prop.type === 'DYNAMIC') return { type: 'DYNAMIC', options: await prop.props(input, ctx) };
    if (typeof prop.options === 'function') return { type: prop.type, options: await prop.options(input, ctx) };
    if (prop.options) return { type: prop.type, options: prop.options };
    throw new Error(`${request.propertyName} is a ${prop.type} prop, which has no options`);
  };
  // auth.validate of the piece, given the connection's value
  const validateAuth = async (request) => {
    const auths = Array.isArray(state.piece.auth) ? state.piece.auth : state.piece.auth ? [state.piece.auth] : [];
    const value = request.value || {};
    const auth = auths.find((a) => a.type === value.type) || auths[0];
    if (!auth || typeof auth.validate !== 'function') return { valid: true };
    const arg = value.type === 'SECRET_TEXT' ? value.secret_text : value.type === 'CUSTOM_AUTH' ? value.props : value.type === 'BASIC_AUTH' ? { username: value.username, password: value.password } : value;
    // what Activepieces' engine gives validate, whatever the framework's context version
    const result = await auth.validate({ auth: arg, server: commonContext(request).server });
    return result && typeof result === 'object' ? result : { valid: true };
  };
  // a trigger's hook: onEnable, onDisable, run, test, onHandshake, onRenew
  const trigger = async (request) => {
    const t = state.piece.getTrigger(request.trigger);
    if (!t) throw new Error(`${state.name}@${state.version} has no trigger ${JSON.stringify(request.trigger)}`);
    const { out, errors } = await processProps({ ...(request.input || {}) }, t.props || {}, null);
    if (Object.keys(errors).length) throw new Error(JSON.stringify(errors, null, 2));
    const auth = authFor(out.auth);
    const listeners = [];
    let schedule = null;
    const ctx = {
      ...commonContext(request),
      auth, propsValue: { ...out, auth },
      store: storeOf(request, request.hook === 'test' ? 'test' : ''),
      webhookUrl: request.webhookUrl,
      payload: request.payload || { body: {}, headers: {}, queryParams: {} },
      app: { createListeners: (l) => { listeners.push(l); } },
      setSchedule: (s) => { schedule = s; },
    };
    const hooks = { onEnable: t.onEnable, onDisable: t.onDisable, run: t.run, test: t.test, onHandshake: t.onHandshake, onRenew: t.onRenew };
    const fn = hooks[request.hook];
    if (typeof fn !== 'function') return { output: request.hook === 'run' || request.hook === 'test' ? [] : null, type: t.type, listeners, schedule };
    const output = await fn.call(t, ctx);
    return { output: output === undefined ? null : output, type: t.type, listeners, schedule };
  };

  // an app webhook (Slack's events, and the like): is it signed with the app's secret, and
  // what event of which account is it, or what to answer at once (a url_verification)
  const appEvent = async (request) => {
    const events = state.piece.events;
    if (!events) throw new Error(`${state.name}@${state.version} receives no app events (it has no events)`);
    const payload = request.payload;
    const verified = !!(await events.verify({ webhookSecret: request.webhookSecret, payload, appWebhookUrl: request.appWebhookUrl }));
    const parsed = verified ? await events.parseAndReply({ payload }) : null;
    return { verified, parsed: parsed || {} };
  };

  G.__troupe_piece = { run, options, validateAuth, trigger, appEvent };
  return (tree) => {
    packages = tree.packages;
    for (const [key, p] of Object.entries(packages)) {
      fileSets[key] = new Set(p.files);
      if (!byName[p.name]) byName[p.name] = key;
    }
    const root = packages[tree.root];
    const [key, file] = [tree.root, resolvePackage(tree.root, '')];
    if (!file) throw new Error(`${root.name}@${root.version} has no main module`);
    const exports = load(key, file);
    const piece = findPiece(exports);
    if (!piece) throw new Error(`${root.name}@${root.version} exports no piece (no object made by createPiece)`);
    Object.assign(state, { piece, name: root.name, version: root.version });
    return clean({ ...piece.metadata(), name: root.name, version: root.version, authors: piece.authors });
  };
})();
