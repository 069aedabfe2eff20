#!/usr/bin/env node
// Builds the native addon from source, for contributors (npm test, npm run
// example, npm run bench all call this; users install a prebuilt platform
// package instead). It builds only when the addon for this machine is missing
// or older than its sources, and checks the prerequisites first, naming any
// that is missing and how to get it.
//
//   node scripts/build.js                 build if missing or stale
//   node scripts/build.js --force         build in any case
//   node scripts/build.js --glibc-floor   on Linux x64 glibc: the build must be the
//                                         old-glibc one (what the platform package ships)
//   node scripts/build.js --debug         a debug build (faster to compile), same file name
//   node scripts/build.js --symbols       a release build that keeps its symbols (for perf:
//                                         npm run bench:profiles names the store's functions)
//
// The output is `redis-conversation-store.<platform>.node` in the package
// directory (the loader in binding.js tries it before the platform package),
// plus the regenerated binding.js / binding.d.ts.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { root, packageJson, binaryName, hostPlatform, localAddonPath, GLIBC_FLOOR } = require('./platform.js');
const { ensureZigToolchain, zigToolchainPresent } = require('./zig-toolchain.js');

const force = process.argv.includes('--force');
const floorRequired = process.argv.includes('--glibc-floor');
const debug = process.argv.includes('--debug');
const keepSymbols = process.argv.includes('--symbols');
const platform = hostPlatform();
const addon = localAddonPath(platform);
const stampPath = path.join(root, '.addon-build.json');
/** cargo-zigbuild reads the suffix as the glibc version to link against. */
const FLOOR_TARGET = `x86_64-unknown-linux-gnu.${GLIBC_FLOOR}`;

function fail(message) {
  console.error(`\n[redis-conversation-store] ${message}\n`);
  process.exit(1);
}

function has(command, args = ['--version']) {
  const result = spawnSync(command, args, { stdio: 'ignore' });
  return !result.error && result.status === 0;
}

function newestSource() {
  const files = ['Cargo.toml', 'Cargo.lock', 'build.rs'].map((f) => path.join(root, f));
  for (const entry of fs.readdirSync(path.join(root, 'src'), { recursive: true })) {
    files.push(path.join(root, 'src', entry));
  }
  return Math.max(...files.filter((f) => fs.existsSync(f)).map((f) => fs.statSync(f).mtimeMs));
}

function readStamp() {
  try {
    return JSON.parse(fs.readFileSync(stampPath, 'utf8'));
  } catch {
    return {};
  }
}

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) fail(`Node.js 20 or newer is required (this is ${process.version}). Install it from https://nodejs.org or with nvm: nvm install 20`);

const floorPossible = platform === 'linux-x64-gnu';
const stamp = readStamp();
const fresh =
  fs.existsSync(addon) &&
  fs.statSync(addon).mtimeMs >= newestSource() &&
  stamp.version === packageJson.version &&
  (!keepSymbols || stamp.symbols === true) &&
  (!floorRequired || !floorPossible || stamp.target === FLOOR_TARGET);
if (!force && fresh) process.exit(0);

// The old-glibc build is what the linux-x64-gnu package ships; once its tools
// are here, every build on such a machine uses it, so one build serves the
// tests, the example and the packaging test.
// (Not for --symbols: the zig link strips the addon whatever we ask.)
const useFloor = floorPossible && (floorRequired || (!debug && !keepSymbols && zigToolchainPresent()));
const target = useFloor ? FLOOR_TARGET : 'host';
const profile = debug ? 'debug' : 'release';

if (!has('cargo')) {
  fail(
    'The Rust toolchain (cargo) is required to build the native addon from source and was not found.\n' +
      "Install it with: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"$HOME/.cargo/env\"\n" +
      `(To use the package without building it, install it from npm: it ships a prebuilt addon for ${platform} if one is published.)`,
  );
}
if (process.platform !== 'win32' && !has('cc') && !has('gcc')) {
  fail('A C compiler/linker is required by the Rust build. On Debian: sudo apt-get install -y build-essential');
}
const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
if (!fs.existsSync(cli)) fail('@napi-rs/cli is missing: run `npm install` in this directory first.');

let env = process.env;
if (useFloor) {
  try {
    env = ensureZigToolchain();
  } catch (error) {
    fail(`${error.message}\n(The build that runs on glibc ${GLIBC_FLOOR}+ needs it; without --glibc-floor a plain build is made.)`);
  }
}

// Build into a staging directory and rename into place: a process that has the
// old addon loaded keeps its (unlinked) file instead of seeing it rewritten.
const staging = fs.mkdtempSync(path.join(root, '.build-'));
const builtName = `${binaryName}.${platform}.node`;
const args = [cli, 'build', '--platform', ...(debug ? [] : ['--release', ...(keepSymbols ? [] : ['--strip'])]), '--output-dir', staging, '--js', 'binding.js', '--dts', 'binding.d.ts', '--no-dts-header'];
if (useFloor) args.push('--cross-compile', '--target', FLOOR_TARGET);
console.error(
  `[redis-conversation-store] building the native addon for ${platform}` +
    `${useFloor ? ` against glibc ${GLIBC_FLOOR} (cargo zigbuild)` : ''} (${profile}; the first build takes a few minutes)...`,
);
let result;
try {
  result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit', env });
  if (result.status === 0) {
    for (const file of ['binding.js', 'binding.d.ts']) fs.renameSync(path.join(staging, file), path.join(root, file));
    fs.renameSync(path.join(staging, builtName), addon);
    fs.writeFileSync(stampPath, `${JSON.stringify({ platform, target, profile, version: packageJson.version, symbols: debug || (keepSymbols && !useFloor) })}\n`);
  }
} finally {
  fs.rmSync(staging, { recursive: true, force: true });
}
if (result.error) fail(`the native build could not start: ${result.error.message}`);
if (result.status !== 0) fail('the native build failed (see the cargo output above).');
