#!/usr/bin/env node
// Builds the native addon from source when it is missing or older than its
// sources (npm install, npm test, npm run example all call this). It checks
// the prerequisites first and names any that is missing, with how to get it.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const addon = path.join(root, 'redis-conversation-store.node');
const force = process.argv.includes('--force');

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

const [major] = process.versions.node.split('.').map(Number);
if (major < 20) fail(`Node.js 20 or newer is required (this is ${process.version}). Install it from https://nodejs.org or with nvm: nvm install 20`);

if (!force && fs.existsSync(addon) && fs.statSync(addon).mtimeMs >= newestSource()) {
  process.exit(0);
}

if (!has('cargo')) {
  fail(
    'The Rust toolchain (cargo) is required to build the native addon and was not found.\n' +
      "Install it with: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y && . \"$HOME/.cargo/env\"",
  );
}
if (!has('cc') && !has('gcc')) {
  fail('A C compiler/linker is required by the Rust build. On Debian: sudo apt-get install -y build-essential');
}

const cli = path.join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js');
// Build next to the addon and rename into place: a process that has the old
// addon loaded keeps its (unlinked) file instead of seeing it rewritten.
const staging = fs.mkdtempSync(path.join(root, '.build-'));
console.error('[redis-conversation-store] building the native addon (cargo build --release; the first build takes a few minutes)...');
let result;
try {
  if (fs.existsSync(cli)) {
    const args = [cli, 'build', '--release', '--output-dir', staging, '--dts', 'native.d.ts', '--no-dts-header'];
    result = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
    if (result.status === 0) fs.renameSync(path.join(staging, 'native.d.ts'), path.join(root, 'native.d.ts'));
  } else {
    // Installed as a dependency: no dev tools, so call cargo and copy the library.
    result = spawnSync('cargo', ['build', '--release', '--lib'], { cwd: root, stdio: 'inherit' });
    if (result.status === 0) {
      const targetDir = process.env.CARGO_TARGET_DIR || path.join(root, 'target');
      fs.copyFileSync(path.join(targetDir, 'release', 'libredis_conversation_store.so'), path.join(staging, path.basename(addon)));
    }
  }
  if (result.status === 0) fs.renameSync(path.join(staging, path.basename(addon)), addon);
} finally {
  fs.rmSync(staging, { recursive: true, force: true });
}
if (result.error) fail(`the native build could not start: ${result.error.message}`);
if (result.status !== 0) fail('the native build failed (see the cargo output above).');
