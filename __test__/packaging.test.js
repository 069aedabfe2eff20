'use strict';
// The user's path, end to end: pack the root package and this machine's
// platform package the way the release workflow does (napi create-npm-dirs,
// artifacts, pre-publish, then npm pack), install both tarballs into a fresh
// project offline with no Rust toolchain on PATH, and use the store from
// CommonJS, ESM and strict NodeNext TypeScript against a throwaway
// redis-server. Then the ways it goes wrong: --ignore-scripts, a missing
// platform package, and NAPI_RS_NATIVE_LIBRARY_PATH.
//
// It packs the addon the build left in the package directory (on Linux x64
// glibc: the old-glibc build, see glibc-floor.test.js), so it costs no
// second compile: about 10-20 s, mostly npm.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { parseTriple } = require('@napi-rs/cli');
const { startRedis } = require('../test-support');
const { root, packageJson, binaryName, hostPlatform, platformPackageName, localAddonPath } = require('../scripts/platform.js');
const musl = require('../scripts/musl.js');

const platform = hostPlatform();
const hostTriple = packageJson.napi.targets.find((triple) => parseTriple(triple).platformArchABI === platform);
const platformPackage = platformPackageName(platform);
const addonFile = `${binaryName}.${platform}.node`;
const napiCli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
const STEP_TIMEOUT_MS = 120_000;

/** The environment a user's machine has: no Rust toolchain, no npm settings inherited from `npm test`. */
function userEnv(extra = {}) {
  const hasRust = (dir) => ['cargo', 'rustc', 'cargo.exe', 'rustc.exe'].some((tool) => fs.existsSync(path.join(dir, tool)));
  const dirs = (process.env.PATH ?? '').split(path.delimiter).filter((dir) => dir && !hasRust(dir));
  const env = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) && !/^(CARGO|RUSTUP)_/i.test(key) && key !== 'NAPI_RS_NATIVE_LIBRARY_PATH') env[key] = value;
  }
  return { ...env, PATH: [path.dirname(process.execPath), ...dirs].join(path.delimiter), ...extra };
}

/** Runs a command to completion; throws with its output when it fails. */
function run(command, args, { cwd, env = userEnv(), allowFailure = false } = {}) {
  const result = spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: STEP_TIMEOUT_MS });
  if (result.error) throw result.error;
  if (result.status !== 0 && !allowFailure) {
    throw new Error(`${path.basename(command)} ${args.join(' ')} exited ${result.status}\n${result.stdout}\n${result.stderr}`);
  }
  return result;
}

function npm(args, cwd, extra = {}) {
  const npmCli = process.env.npm_execpath && fs.existsSync(process.env.npm_execpath) ? [process.execPath, process.env.npm_execpath] : ['npm'];
  const [command, ...prefix] = process.platform === 'win32' && npmCli[0] === 'npm' ? ['npm.cmd'] : npmCli;
  return run(command, [...prefix, ...args], { cwd, ...extra });
}

function napi(args, cwd) {
  return run(process.execPath, [napiCli, ...args], { cwd, env: { ...userEnv(), PATH: process.env.PATH } });
}

/** `npm pack --json` for one directory: the tarball's path, sizes and file list. */
function pack(dir, destination) {
  const [info] = JSON.parse(npm(['pack', dir, '--json', '--pack-destination', destination], destination).stdout);
  return { ...info, tarball: path.join(destination, info.filename), paths: info.files.map((f) => f.path) };
}

const kib = (bytes) => `${(bytes / 1024).toFixed(0)} KiB`;

// The consumer's programs: each prints one JSON line describing what happened.
const STORE_ROUND_TRIP = `
  const store = new RedisStore({ url: process.env.REDIS_URL, allowPlaintext: true, keyPrefix: 'pkg:' });
  const id = process.argv[2];
  const record = { userId: 'user-' + id, updatedAt: new Date().toISOString(), history: [{ role: 'user', content: 'hello' }] };
  await store.set(id, record);
  const got = await store.get(id);
  const listed = await store.listByUser(record.userId);
  await store.delete(id);
  const afterDelete = await store.get(id);
  await store.close();
  const loaded = Object.keys(require.cache).filter((file) => file.endsWith('.node'));
  console.log(JSON.stringify({ got, listed, afterDelete: afterDelete ?? null, loaded }));
`;
const CJS_CONSUMER = `'use strict';
const { RedisStore } = require('redis-conversation-store');
(async () => {${STORE_ROUND_TRIP}})().catch((error) => { console.error(error); process.exit(1); });
`;
const ESM_CONSUMER = `import { RedisStore } from 'redis-conversation-store';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
${STORE_ROUND_TRIP}`;
const LOAD_ONLY = `'use strict';
try {
  require('redis-conversation-store');
  console.log(JSON.stringify({ loaded: true }));
} catch (error) {
  console.log(JSON.stringify({ loaded: false, message: error.message, code: error.code, expectedPackage: error.expectedPackage }));
}
`;
const TS_CONSUMER = `import { RedisStore, MemoryStore, isRedisError, StoreInputError, type ConversationStore } from 'redis-conversation-store';

interface Conversation {
  userId: string;
  updatedAt: string;
  history: { role: 'user' | 'assistant'; content: string }[];
}

export async function roundTrip(url: string): Promise<number> {
  const store: ConversationStore<Conversation> = new RedisStore<Conversation>({ url, allowPlaintext: true });
  const got: Conversation | undefined = await store.get('c1');
  const listed: Conversation[] = await store.listByUser('u1');
  const memory: ConversationStore<Conversation> = new MemoryStore<Conversation>();
  // @ts-expect-error a record must have a userId
  await memory.set('c2', { updatedAt: '2024-01-01T00:00:00Z', history: [] });
  try {
    await store.delete('c1');
  } catch (error) {
    if (isRedisError(error)) return 503;
    if (error instanceof StoreInputError) return 400;
  }
  return (got?.history.length ?? 0) + listed.length;
}
`;

function writeConsumer(dir) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
  fs.writeFileSync(path.join(dir, 'consumer.cjs'), CJS_CONSUMER);
  fs.writeFileSync(path.join(dir, 'consumer.mjs'), ESM_CONSUMER);
  fs.writeFileSync(path.join(dir, 'load-only.cjs'), LOAD_ONLY);
  fs.writeFileSync(path.join(dir, 'consumer.ts'), TS_CONSUMER);
  const compilerOptions = {
    strict: true,
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    target: 'ES2022',
    noEmit: true,
    skipLibCheck: false,
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules', '@types')],
  };
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), `${JSON.stringify({ compilerOptions, files: ['consumer.ts'] }, null, 2)}\n`);
}

function installTarballs(dir, tarballs, extraArgs = []) {
  const cache = path.join(dir, '..', 'npm-cache');
  return npm(['install', '--offline', '--no-audit', '--no-fund', '--cache', cache, ...extraArgs, ...tarballs], dir);
}

function runJson(dir, args, extraEnv) {
  const result = run(process.execPath, args, { cwd: dir, env: userEnv(extraEnv), allowFailure: true });
  assert.equal(result.status, 0, `node ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1));
}

function assertRoundTrip(outcome, id, expectedAddon) {
  assert.equal(outcome.got.userId, `user-${id}`);
  assert.deepEqual(outcome.got.history, [{ role: 'user', content: 'hello' }]);
  assert.deepEqual(
    outcome.listed.map((record) => record.userId),
    [`user-${id}`],
  );
  assert.equal(outcome.afterDelete, null);
  assert.deepEqual(outcome.loaded, [fs.realpathSync(expectedAddon)]);
}

/**
 * The release workflow's steps for `builds` (target triple -> addon file):
 * napi create-npm-dirs, artifacts and pre-publish on the packed root
 * package, then npm pack of it and of each platform package.
 */
function packRelease(tmp, builds) {
  const firstPack = pack(root, tmp);
  run('tar', ['-xzf', firstPack.tarball, '-C', tmp]);
  fs.rmSync(firstPack.tarball);
  const staged = path.join(tmp, 'package');
  const config = path.join(tmp, 'napi-release.json');
  fs.writeFileSync(config, JSON.stringify({ ...packageJson.napi, targets: Object.keys(builds) }));
  for (const [triple, addon] of Object.entries(builds)) {
    const artifacts = path.join(tmp, 'artifacts', `bindings-${triple}`);
    fs.mkdirSync(artifacts, { recursive: true });
    fs.copyFileSync(addon, path.join(artifacts, `${binaryName}.${parseTriple(triple).platformArchABI}.node`));
  }
  napi(['create-npm-dirs', '-c', config], staged);
  napi(['artifacts', '-c', config, '--output-dir', path.join(tmp, 'artifacts')], staged);
  napi(['pre-publish', '-c', config, '-t', 'npm', '--no-gh-release', '--skip-optional-publish'], staged);

  const packs = path.join(tmp, 'packs');
  fs.mkdirSync(packs);
  const platformPacks = {};
  for (const triple of Object.keys(builds)) {
    const target = parseTriple(triple).platformArchABI;
    platformPacks[target] = pack(path.join(staged, 'npm', target), packs);
  }
  return { rootPack: pack(staged, packs), platformPacks };
}

describe('the published packages, installed where there is no Rust', { skip: !hostTriple && `no platform package is declared for ${platform}` }, () => {
  let tmp;
  let redis;
  let rootPack;
  let platformPack;
  let app;

  before(async () => {
    const addon = localAddonPath(platform);
    assert.ok(fs.existsSync(addon), `no addon at ${addon}: run \`node scripts/build.js --glibc-floor\` (npm test does) first`);
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rcs-packaging-')));
    redis = await startRedis();

    // The release workflow's steps, for this machine's target only.
    ({ rootPack, platformPacks: { [platform]: platformPack } } = packRelease(tmp, { [hostTriple]: addon }));

    app = path.join(tmp, 'app');
    writeConsumer(app);
    installTarballs(app, [rootPack.tarball, platformPack.tarball]);
  });

  after(async () => {
    await redis?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('packs no sources, no build output and no addon into the root package; one addon into the platform package', (t) => {
    t.diagnostic(`${rootPack.filename}: ${kib(rootPack.size)} packed, ${kib(rootPack.unpackedSize)} unpacked, ${rootPack.entryCount} files`);
    t.diagnostic(`${platformPack.filename}: ${kib(platformPack.size)} packed, ${kib(platformPack.unpackedSize)} unpacked, ${platformPack.entryCount} files`);
    for (const file of rootPack.paths) {
      assert.ok(!/^(src|target|npm|scripts|__test__)\//.test(file), `${file} must not be in the root package`);
      assert.ok(!/\.(node|rs)$/.test(file) && !/^Cargo\./.test(file), `${file} must not be in the root package`);
    }
    for (const file of ['index.js', 'index.d.ts', 'loader.js', 'binding.js', 'binding.d.ts', 'package.json', 'README.md', 'CHANGELOG.md', 'LICENSE', 'docs/contract.md']) {
      assert.ok(rootPack.paths.includes(file), `${file} is missing from the root package`);
    }
    assert.deepEqual(
      platformPack.paths.filter((file) => file.endsWith('.node')),
      [addonFile],
    );
  });

  it('declares the platform package as an optional dependency at its own version, with no install script', () => {
    const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', packageJson.name, 'package.json'), 'utf8'));
    assert.equal(installed.version, packageJson.version);
    assert.equal(installed.optionalDependencies?.[platformPackage], packageJson.version);
    for (const hook of ['preinstall', 'install', 'postinstall']) assert.equal(installed.scripts?.[hook], undefined, `${hook} script shipped`);

    const platformManifest = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', platformPackage, 'package.json'), 'utf8'));
    const target = parseTriple(hostTriple);
    assert.equal(platformManifest.version, packageJson.version);
    assert.deepEqual(platformManifest.os, [target.platform]);
    assert.deepEqual(platformManifest.cpu, [target.arch]);
    if (target.platform === 'linux') assert.deepEqual(platformManifest.libc, [target.abi === 'musl' ? 'musl' : 'glibc']);
  });

  it('installed with no Rust toolchain on PATH', () => {
    for (const tool of ['cargo', 'rustc']) {
      const probe = spawnSync(tool, ['--version'], { env: userEnv() });
      assert.equal(probe.error?.code, 'ENOENT', `${tool} is reachable from the install's PATH`);
    }
  });

  it('works from CommonJS (set, get, listByUser, delete), loading the platform package', () => {
    const outcome = runJson(app, ['consumer.cjs', 'cjs'], { REDIS_URL: redis.url });
    assertRoundTrip(outcome, 'cjs', path.join(app, 'node_modules', platformPackage, addonFile));
  });

  it('works from ESM with a named import', () => {
    const outcome = runJson(app, ['consumer.mjs', 'esm'], { REDIS_URL: redis.url });
    assertRoundTrip(outcome, 'esm', path.join(app, 'node_modules', platformPackage, addonFile));
  });

  it('type-checks a strict NodeNext TypeScript consumer against the installed typings', () => {
    const result = run(process.execPath, [tsc, '-p', app], { cwd: app, allowFailure: true });
    assert.equal(result.status, 0, `tsc failed:\n${result.stdout}\n${result.stderr}`);
  });

  it('works when installed with --ignore-scripts', () => {
    const hardened = path.join(tmp, 'app-ignore-scripts');
    writeConsumer(hardened);
    installTarballs(hardened, [rootPack.tarball, platformPack.tarball], ['--ignore-scripts']);
    const outcome = runJson(hardened, ['consumer.cjs', 'ignore-scripts'], { REDIS_URL: redis.url });
    assertRoundTrip(outcome, 'ignore-scripts', path.join(hardened, 'node_modules', platformPackage, addonFile));
  });

  it('without the platform package, names it, says how to get it, and lists each failed attempt', () => {
    const elsewhere = path.join(tmp, 'elsewhere');
    fs.mkdirSync(elsewhere);
    fs.copyFileSync(path.join(app, 'node_modules', platformPackage, addonFile), path.join(elsewhere, addonFile));
    fs.rmSync(path.join(app, 'node_modules', platformPackage), { recursive: true });

    const outcome = runJson(app, ['load-only.cjs']);
    assert.equal(outcome.loaded, false);
    assert.equal(outcome.code, 'ERR_NATIVE_BINDING_NOT_FOUND');
    assert.equal(outcome.expectedPackage, platformPackage);
    assert.match(outcome.message, new RegExp(`"${platformPackage}" at version ${packageJson.version.replaceAll('.', '\\.')}`));
    assert.match(outcome.message, new RegExp(`npm install ${platformPackage}@`));
    assert.match(outcome.message, /build from source/);
    assert.match(outcome.message, new RegExp(`Cannot find module '\\./${addonFile.replaceAll('.', '\\.')}'`));
    assert.match(outcome.message, new RegExp(`Cannot find module '${platformPackage}'`));
  });

  it('loads the addon named by NAPI_RS_NATIVE_LIBRARY_PATH', () => {
    const override = path.join(tmp, 'elsewhere', addonFile);
    assert.ok(!fs.existsSync(path.join(app, 'node_modules', platformPackage)), 'the platform package must be gone for this to prove anything');
    const outcome = runJson(app, ['consumer.cjs', 'override'], { REDIS_URL: redis.url, NAPI_RS_NATIVE_LIBRARY_PATH: override });
    assertRoundTrip(outcome, 'override', override);
  });
});

// Alpine (linux-x64-musl), the first user's image: the same release steps for
// the gnu and musl targets, installed by npm running on a musl Node (built
// here, see scripts/musl.js), used from CommonJS and ESM on that Node; then a
// glibc Node in the same project must take the gnu package.
const MUSL_TRIPLE = 'x86_64-unknown-linux-musl';
const GNU_TRIPLE = 'x86_64-unknown-linux-gnu';
let muslSkip = false;
if (process.platform !== 'linux' || process.arch !== 'x64') {
  muslSkip = 'the musl packaging test runs on Linux x64 only';
} else {
  try {
    musl.build();
    musl.muslNodeAsOnAlpine([]);
  } catch (error) {
    if (!(error instanceof musl.MuslUnavailable)) throw error;
    muslSkip = `linux-x64-musl packaging NOT TESTED on this machine: ${error.message}`;
    console.error(`\n[musl] ${muslSkip}\n`);
  }
}

describe('the same packages on a musl Node (Alpine), next to a glibc Node', { skip: muslSkip }, () => {
  const muslPackage = platformPackageName('linux-x64-musl');
  const gnuPackage = platformPackageName('linux-x64-gnu');
  let tmp;
  let redis;
  let app;
  let muslInstall;

  /** A program run by the musl Node as on Alpine; its last stdout line is JSON. */
  function runMuslJson(args, extraEnv = {}) {
    const [command, commandArgs] = musl.muslNodeAsOnAlpine(args);
    const result = run(command, commandArgs, { cwd: app, env: userEnv(extraEnv), allowFailure: true });
    assert.equal(result.status, 0, `musl node ${args.join(' ')} failed:\n${result.stdout}\n${result.stderr}`);
    return JSON.parse(result.stdout.trim().split('\n').at(-1));
  }

  before(async () => {
    const gnuAddon = localAddonPath('linux-x64-gnu');
    assert.ok(fs.existsSync(gnuAddon), `no addon at ${gnuAddon}: run \`node scripts/build.js --glibc-floor\` (npm test does) first`);
    assert.ok(packageJson.napi.targets.includes(MUSL_TRIPLE), `${MUSL_TRIPLE} is not among the napi targets`);
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'rcs-packaging-musl-')));
    redis = await startRedis();
    const { rootPack, platformPacks } = packRelease(tmp, { [GNU_TRIPLE]: gnuAddon, [MUSL_TRIPLE]: musl.addonPath });

    app = path.join(tmp, 'app');
    writeConsumer(app);
    // npm itself runs on the musl Node: what `npm ci` in a node:20-alpine image does.
    const cache = path.join(tmp, 'npm-cache');
    const installArgs = ['install', '--offline', '--no-audit', '--no-fund', '--cache', cache, rootPack.tarball, platformPacks['linux-x64-musl'].tarball];
    const [command, commandArgs] = musl.muslNodeAsOnAlpine([musl.muslNpmCli, ...installArgs]);
    muslInstall = run(command, commandArgs, { cwd: app, env: userEnv() });
    // Then the gnu package beside it, by the glibc npm (--force: npm would
    // otherwise drop the musl package, which does not fit this runtime).
    installTarballs(app, [platformPacks['linux-x64-gnu'].tarball], ['--no-save', '--force']);
  });

  after(async () => {
    await redis?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('npm on the musl Node installs the root and musl packages, with no Rust toolchain on PATH', () => {
    assert.ok(fs.existsSync(path.join(app, 'node_modules', muslPackage, `${binaryName}.linux-x64-musl.node`)), `${muslPackage} is not installed:\n${muslInstall.stderr}`);
    const installed = JSON.parse(fs.readFileSync(path.join(app, 'node_modules', packageJson.name, 'package.json'), 'utf8'));
    assert.equal(installed.optionalDependencies?.[muslPackage], packageJson.version);
    assert.equal(installed.optionalDependencies?.[gnuPackage], packageJson.version);
    for (const tool of ['cargo', 'rustc']) {
      assert.equal(spawnSync(tool, ['--version'], { env: userEnv() }).error?.code, 'ENOENT', `${tool} is reachable from the install's PATH`);
    }
  });

  it('the musl Node reports a musl runtime (no glibc version), as on Alpine', () => {
    const { glibc } = runMuslJson(['-p', 'JSON.stringify({ glibc: process.report.getReport().header.glibcVersionRuntime ?? null })']);
    assert.equal(glibc, null);
  });

  it('the musl Node loads the musl package from CommonJS and round-trips a record', () => {
    const outcome = runMuslJson(['consumer.cjs', 'musl-cjs'], { REDIS_URL: redis.url });
    assertRoundTrip(outcome, 'musl-cjs', path.join(app, 'node_modules', muslPackage, `${binaryName}.linux-x64-musl.node`));
  });

  it('the musl Node loads the musl package from ESM and round-trips a record', () => {
    const outcome = runMuslJson(['consumer.mjs', 'musl-esm'], { REDIS_URL: redis.url });
    assertRoundTrip(outcome, 'musl-esm', path.join(app, 'node_modules', muslPackage, `${binaryName}.linux-x64-musl.node`));
  });

  it('a glibc Node in the same project loads the gnu package', () => {
    assert.ok(fs.existsSync(path.join(app, 'node_modules', muslPackage)), 'both platform packages must be installed for this to prove anything');
    const outcome = runJson(app, ['consumer.cjs', 'glibc'], { REDIS_URL: redis.url });
    assertRoundTrip(outcome, 'glibc', path.join(app, 'node_modules', gnuPackage, `${binaryName}.linux-x64-gnu.node`));
  });
});
