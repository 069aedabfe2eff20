'use strict';

// The options have one source of truth: the native option table
// (src/options.rs, exported as storeOptions()). Every option in it is
// declared by the native configuration (binding.d.ts, generated from the napi
// structs), declared and documented in index.d.ts with the same default and
// environment variable, and has a row in the README's options table, and the
// reverse. Then: an options object with a key the store does not take is
// refused with a StoreConfigError naming the key (issue 17).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const native = require('../loader.js').loadBinding();
const { RedisStore, MemoryStore, createConversationStore, isRedisError } = require('..');

const root = path.resolve(__dirname, '..');
const read = (file) => fs.readFileSync(path.join(root, file), 'utf8');

/** The table, flattened: nested fields as `tls.ca`. */
function tableRows() {
  const rows = [];
  for (const option of native.storeOptions()) {
    rows.push(option);
    for (const field of option.fields) rows.push({ ...field, name: `${option.name}.${field.name}`, parent: option.name });
  }
  return rows;
}

/** The body of `interface <name>` (up to its closing brace at line start). */
function interfaceBody(source, name, file) {
  const match = new RegExp(`interface ${name}\\b[^{]*\\{\\n([\\s\\S]*?)\\n\\}`).exec(source);
  assert.ok(match, `${file} has no interface ${name}`);
  return match[1];
}

/** Member names of an interface body, each with the text of its JSDoc. */
function members(body) {
  const found = new Map();
  // A JSDoc (which cannot contain `*/`) right before `name?:`.
  const member = /(?:\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*)?^\s*(\w+)\?:/gm;
  for (const [, doc = '', name] of body.matchAll(member)) {
    found.set(name, doc.replace(/^\s*\*\s?/gm, '').replace(/\s+/g, ' ').trim());
  }
  return found;
}

/** The default a JSDoc states: `Default \`x\`` (code), `Default: words.`, or `Required.` */
function documentedDefault(doc) {
  const code = /\bDefault `([^`]*)`/.exec(doc);
  if (code) return `\`${code[1]}\``;
  const words = /\bDefault: ([^.]*)\./.exec(doc);
  if (words) return words[1];
  return /\bRequired\b/.test(doc) ? 'required' : undefined;
}

function documentedEnv(doc) {
  return /\bEnv: `(REDIS_[A-Z_]+)/.exec(doc)?.[1] ?? null;
}

/** The README's options table: one entry per option named in a row. */
function readmeRows() {
  const readme = read('README.md');
  const section = /\n## Options\n([\s\S]*?)\n## /.exec(readme);
  assert.ok(section, 'README.md has no "## Options" section');
  const lines = section[1].split('\n').filter((line) => line.startsWith('|'));
  const header = lines[0].split('|').slice(1, -1).map((cell) => cell.trim());
  assert.deepEqual(header.slice(0, 3), ['option', 'default', 'environment'], 'README options table columns');
  const rows = new Map();
  for (const line of lines.slice(2)) {
    const [names, defaultText, env] = line.split('|').slice(1, -1).map((cell) => cell.trim());
    for (const [, name] of names.matchAll(/`([\w.]+)`/g)) {
      rows.set(name, {
        memory: names.includes('(M)'),
        default: defaultText,
        env: env === '—' ? null : env.replace(/`/g, ''),
      });
    }
  }
  return { rows, text: section[1] };
}

/** Compares two name lists; each entry of the result names a mismatch. */
function differences(expected, actual, expectedWhere, actualWhere) {
  const problems = [];
  for (const name of expected) if (!actual.includes(name)) problems.push(`${name}: in ${expectedWhere}, missing from ${actualWhere}`);
  for (const name of actual) if (!expected.includes(name)) problems.push(`${name}: in ${actualWhere}, not in ${expectedWhere}`);
  return problems;
}

describe('one source of truth for the options', () => {
  const table = tableRows();
  const topLevel = table.filter((row) => !row.parent);
  const names = (rows) => rows.map((row) => row.name).sort();
  const tlsFields = table.filter((row) => row.parent === 'tls').map((row) => row.name.slice('tls.'.length));

  it('the table is not empty and has the options the stores are known for', () => {
    for (const name of ['url', 'ttlSeconds', 'commandTimeoutMs', 'keyPrefix', 'tls.ca', 'schema', 'logger']) {
      assert.ok(table.some((row) => row.name === name), `${name} is not in the option table`);
    }
  });

  it('matches the native configuration (binding.d.ts, generated from the napi structs)', () => {
    const source = read('binding.d.ts');
    const nativeNames = (name) => [...members(interfaceBody(source, name, 'binding.d.ts')).keys()].sort();
    const reachesNative = topLevel.filter((row) => !row.jsOnly);
    const problems = [
      ...differences(names(reachesNative), nativeNames('RedisOptions'), 'the option table', 'native RedisOptions'),
      ...differences(
        names(reachesNative.filter((row) => row.store === 'both')),
        nativeNames('CommonOptions'),
        'the option table (both stores)',
        'native CommonOptions',
      ),
      ...differences(tlsFields.sort(), nativeNames('TlsOptions'), 'the option table (tls)', 'native TlsOptions'),
    ];
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  it('matches index.d.ts: the same options, defaults and environment variables', () => {
    const source = read('index.d.ts');
    const memory = members(interfaceBody(source, 'MemoryStoreOptions', 'index.d.ts'));
    const redis = members(interfaceBody(source, 'RedisStoreOptions', 'index.d.ts'));
    const tls = members(interfaceBody(source, 'TlsOptions', 'index.d.ts'));
    const problems = [
      ...differences(
        names(topLevel.filter((row) => row.store === 'both')),
        [...memory.keys()].sort(),
        'the option table (both stores)',
        'index.d.ts MemoryStoreOptions',
      ),
      ...differences(
        names(topLevel.filter((row) => row.store === 'redis')),
        [...redis.keys()].sort(),
        'the option table (RedisStore only)',
        'index.d.ts RedisStoreOptions',
      ),
      ...differences(tlsFields.sort(), [...tls.keys()].sort(), 'the option table (tls)', 'index.d.ts TlsOptions'),
    ];
    for (const row of table) {
      const doc = row.parent ? tls.get(row.name.slice(row.parent.length + 1)) : (memory.get(row.name) ?? redis.get(row.name));
      if (doc === undefined) continue; // reported above
      if (row.default != null && documentedDefault(doc) !== row.default) {
        problems.push(`${row.name}: default ${row.default} in the option table, ${documentedDefault(doc) ?? 'none stated'} in index.d.ts`);
      }
      if (documentedEnv(doc) !== (row.env ?? null)) {
        problems.push(`${row.name}: environment ${row.env ?? 'none'} in the option table, ${documentedEnv(doc) ?? 'none'} in index.d.ts`);
      }
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  it("matches the README's options table: a row per option, same default, store and variable", () => {
    const { rows } = readmeRows();
    // An option with fields (tls) is documented by its fields' rows.
    const documented = table.filter((row) => row.fields.length === 0);
    const problems = differences(names(documented), [...rows.keys()].sort(), 'the option table', "the README's options table");
    for (const row of documented) {
      const readme = rows.get(row.name);
      if (!readme) continue; // reported above
      if (readme.default !== row.default) {
        problems.push(`${row.name}: default ${row.default} in the option table, ${readme.default} in the README`);
      }
      if (readme.memory !== (row.store === 'both')) {
        problems.push(`${row.name}: ${row.store === 'both' ? 'both stores take it' : 'only RedisStore takes it'}, but the README ${readme.memory ? 'marks' : 'does not mark'} it (M)`);
      }
      if (readme.env !== (row.env ?? null)) {
        problems.push(`${row.name}: environment ${row.env ?? 'none'} in the option table, ${readme.env ?? 'none'} in the README`);
      }
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  it('the README says that unknown options are refused', () => {
    assert.match(readmeRows().text, /unknown option[\s\S]{0,80}refused/i);
  });
});

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

/** Asserts that `build` throws a StoreConfigError whose message matches every pattern. */
function refuses(build, ...patterns) {
  assert.throws(build, (err) => {
    assert.ok(err instanceof TypeError, `${err}`);
    assert.equal(err.name, 'StoreConfigError', err.message);
    assert.equal(err.code, 'STORE_INVALID_CONFIG');
    assert.equal(isRedisError(err), false);
    for (const pattern of patterns) assert.match(err.message, pattern);
    return true;
  });
}

describe('unknown options are refused', () => {
  // Refused at construction: no connection is ever attempted to this URL.
  const url = 'rediss://127.0.0.1:1';

  it('RedisStore: user and credentials point at username and credentialsProvider; MemoryStore refuses password', () => {
    refuses(() => new RedisStore({ url, user: 'app', logger: null }), /"user": did you mean "username"\?/);
    refuses(() => new RedisStore({ url, credentials: {}, logger: null }), /did you mean "credentialsProvider"\?/);
    refuses(() => new MemoryStore({ password: 'p1', logger: null }), /MemoryStore does not take the option "password": only RedisStore does/);
  });

  const suggestions = [
    ['ttl', 'ttlSeconds'],
    ['commandTimeout', 'commandTimeoutMs'],
    ['keyprefix', 'keyPrefix'],
    ['connectTimeout', 'connectTimeoutMs'],
    ['heartbeatInterval', 'heartbeatIntervalMs'],
    ['allowPlainText', 'allowPlaintext'],
  ];
  for (const [typed, meant] of suggestions) {
    it(`RedisStore: ${typed} is refused with "did you mean ${meant}?"`, () => {
      refuses(() => new RedisStore({ url, [typed]: 1000, logger: null }), new RegExp(`unknown RedisStore option "${typed}": did you mean "${meant}"\\?`));
    });
  }

  it('MemoryStore: a misspelled option is refused with a suggestion too', () => {
    refuses(() => new MemoryStore({ ttl: 60 }), /unknown MemoryStore option "ttl": did you mean "ttlSeconds"\?/);
    refuses(() => new MemoryStore({ listlimit: 10 }), /did you mean "listLimit"\?/);
  });

  it('a key close to no option is refused, listing the options the store takes', () => {
    refuses(() => new MemoryStore({ colour: 'blue' }), /unknown MemoryStore option "colour"; the options are: .*ttlSeconds/);
    refuses(() => new RedisStore({ url, colour: 'blue', logger: null }), /unknown RedisStore option "colour"; the options are: .*commandTimeoutMs/);
  });

  it('a key whose value is undefined is refused as well (it is still a misspelling)', () => {
    refuses(() => new MemoryStore({ ttl: undefined }), /"ttl"/);
  });

  it('nested tls keys are checked, with their path', () => {
    refuses(() => new RedisStore({ url, tls: { ca: PEM, serverName: 'cache' }, logger: null }), /unknown RedisStore option "tls.serverName": did you mean "tls.servername"\?/);
    refuses(() => new RedisStore({ url, tls: { cafile: 'ca.pem' }, logger: null }), /"tls.cafile"; the options are: tls.ca, tls.cert, tls.key, tls.servername/);
    refuses(() => new RedisStore({ url, tls: { rejectUnauthorized: false }, logger: null }), /"tls.rejectUnauthorized": certificate verification cannot be turned off/);
    refuses(() => new RedisStore({ url, tls: Buffer.from(PEM), logger: null }), /tls must be an object with any of: ca, cert, key, servername/);
  });

  it('MemoryStore refuses a RedisStore option, saying which store takes it', () => {
    refuses(() => new MemoryStore({ url }), /MemoryStore does not take the option "url": only RedisStore does/);
    refuses(() => new MemoryStore({ commandTimeoutMs: 100 }), /MemoryStore does not take the option "commandTimeoutMs": only RedisStore does/);
    refuses(() => new MemoryStore({ commandTimeout: 100 }), /did you mean "commandTimeoutMs"\? \(a RedisStore option; MemoryStore does not take it\)/);
  });

  it('createConversationStore falling back to MemoryStore ignores the RedisStore-only options', async () => {
    const store = createConversationStore(
      {},
      {
        commandTimeoutMs: 50,
        keyPrefix: 'app:',
        tls: { ca: PEM },
        cluster: true,
        allowPlaintext: true,
        reconnectMaxDelayMs: 1000,
        ttlSeconds: 60,
        logger: null,
      },
    );
    try {
      assert.ok(store instanceof MemoryStore);
      await store.set('c1', { userId: 'u1', updatedAt: '2026-01-01T00:00:00Z' });
      assert.equal((await store.get('c1')).userId, 'u1');
    } finally {
      await store.close();
    }
  });

  it('createConversationStore refuses an unknown key, with or without REDIS_URL', () => {
    refuses(() => createConversationStore({}, { ttl: 60, logger: null }), /unknown MemoryStore option "ttl": did you mean "ttlSeconds"\?/);
    refuses(() => createConversationStore({}, { commandTimeout: 60, logger: null }), /did you mean "commandTimeoutMs"\?/);
    refuses(() => createConversationStore({ REDIS_URL: url }, { keyprefix: 'app:', logger: null }), /unknown RedisStore option "keyprefix": did you mean "keyPrefix"\?/);
    refuses(() => createConversationStore({ REDIS_URL: url }, { user: 'app', logger: null }), /did you mean "username"\?/);
  });
});
