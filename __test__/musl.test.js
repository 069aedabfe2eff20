'use strict';
// linux-x64-musl (Alpine), proven here rather than declared: the addon is
// built on this Debian machine for x86_64-unknown-linux-musl and loaded by a
// musl build of Node 20 running on musl libc, then used against throwaway
// redis-servers. scripts/musl.js fetches and builds everything into
// .tools/musl/ (the first time: a few minutes; .ci/run does it before the
// tests). On a machine that cannot host the set-up the suite is skipped with
// the reason, printed, never silently.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const musl = require('../scripts/musl.js');
const { localAddonPath } = require('../scripts/platform.js');
const { startRedis } = require('../test-support');

let unavailable = null;
try {
  musl.build();
} catch (error) {
  if (!(error instanceof musl.MuslUnavailable)) throw error;
  unavailable = `linux-x64-musl NOT TESTED on this machine: ${error.message}`;
  console.error(`\n[musl] ${unavailable}\n`);
}

// Runs inside the musl Node: the native store, straight from the .node file.
const NATIVE_ROUND_TRIP = `
const native = require(process.env.ADDON);
(async () => {
  const tls = process.env.REDIS_CA ? { ca: process.env.REDIS_CA } : undefined;
  const store = new native.NativeRedisStore({ url: process.env.REDIS_URL, allowPlaintext: !tls, tls, keyPrefix: 'musl:' }, null);
  const id = 'conv-' + process.pid;
  const record = { userId: 'user-musl', updatedAt: new Date().toISOString(), history: [{ role: 'user', content: 'héllo ✓' }] };
  await store.set(id, JSON.stringify(record));
  const got = JSON.parse(await store.get(id));
  const listed = native.takeRecords(await store.listByUser('user-musl')).map((text) => JSON.parse(text));
  await store.delete(id);
  const afterDelete = await store.get(id);
  store.close();
  const { glibcVersionRuntime } = process.report.getReport().header;
  console.log(JSON.stringify({ got, listed, afterDelete, glibc: glibcVersionRuntime ?? null, sharedObjects: process.report.getReport().sharedObjects }));
})().catch((error) => { console.error(error); process.exit(1); });
`;

describe('linux-x64-musl, built here and loaded by a musl Node', { skip: unavailable ?? false }, () => {
  let tmp;
  let plain;
  let tls;
  let probe;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'rcs-musl-'));
    probe = path.join(tmp, 'probe.cjs');
    fs.writeFileSync(probe, NATIVE_ROUND_TRIP);
    [plain, tls] = await Promise.all([startRedis(), startRedis({ tls: true })]);
  });

  after(async () => {
    await Promise.all([plain?.stop(), tls?.stop()]);
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  function roundTrip(server) {
    const env = { ...process.env, ADDON: musl.addonPath, REDIS_URL: server.url, REDIS_CA: server.tls?.ca ?? '' };
    const result = musl.runMuslNode([probe], { env });
    assert.equal(result.status, 0, `the musl Node failed:\n${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout.trim().split('\n').at(-1));
  }

  function assertRoundTrip(outcome) {
    assert.equal(outcome.got.userId, 'user-musl');
    assert.deepEqual(outcome.got.history, [{ role: 'user', content: 'héllo ✓' }]);
    assert.deepEqual(
      outcome.listed.map((record) => record.userId),
      ['user-musl'],
    );
    assert.equal(outcome.afterDelete, null);
  }

  it('runs a Node that is musl to its runtime (no glibc version), unlike the Node running this test', (t) => {
    const result = musl.runMuslNode(['-p', 'JSON.stringify([process.version, process.report.getReport().header.glibcVersionRuntime ?? null])']);
    assert.equal(result.status, 0, result.stderr);
    const [version, glibc] = JSON.parse(result.stdout);
    t.diagnostic(`musl Node ${version}; this Node ${process.version} on glibc ${process.report.getReport().header.glibcVersionRuntime}`);
    assert.match(version, /^v20\./);
    assert.equal(glibc, null);
    assert.ok(process.report.getReport().header.glibcVersionRuntime, 'the Node running the tests should be a glibc one');
  });

  it('needs only musl libc and what the musl Node itself links, and no glibc-only symbol', (t) => {
    const verdict = musl.checkDynamicDeps();
    t.diagnostic(`addon NEEDED: ${verdict.needed.join(', ')}; musl Node NEEDED: ${verdict.nodeNeeded.join(', ')}; ${verdict.undefinedCount} imported symbols`);
    assert.deepEqual(verdict.problems, []);
    assert.ok(verdict.needed.includes('libc.so') || verdict.needed.includes('libc.musl-x86_64.so.1'), 'links musl libc');
  });

  it('the dependency check catches a glibc build', () => {
    // The same check on the glibc addon must object, or it proves nothing.
    const glibcAddon = localAddonPath('linux-x64-gnu');
    assert.ok(fs.existsSync(glibcAddon), `no glibc addon at ${glibcAddon} (npm test builds it)`);
    const verdict = musl.checkDynamicDeps(glibcAddon);
    assert.ok(
      verdict.problems.some((problem) => /libc\.so\.6|GLIBC/.test(problem)),
      `no objection to the glibc build: ${JSON.stringify(verdict.problems)}`,
    );
  });

  it('loads in the musl Node and round-trips a record (set, get, listByUser, delete)', () => {
    const outcome = roundTrip(plain);
    assertRoundTrip(outcome);
    assert.equal(outcome.glibc, null);
    assert.ok(
      outcome.sharedObjects.some((file) => fs.existsSync(file) && fs.realpathSync(file) === fs.realpathSync(musl.addonPath)),
      `the musl addon is not among the loaded objects: ${outcome.sharedObjects.join(', ')}`,
    );
  });

  it('round-trips over TLS too (rustls and ring, whose C and assembly musl-gcc compiled)', () => {
    assertRoundTrip(roundTrip(tls));
  });
});
