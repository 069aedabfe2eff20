'use strict';
// The tools for the Linux x64 glibc build that loads on old distributions:
// zig (as the C compiler and linker, pinned to an old glibc symbol set) and
// cargo-zigbuild (which drives cargo through it). Found on PATH, or installed
// once into .tools/ in this checkout: zig from the `ziglang` package on PyPI,
// cargo-zigbuild from crates.io.

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const toolsDir = path.join(root, '.tools');
const ZIGLANG_VERSION = '0.17.1';
const CARGO_ZIGBUILD_VERSION = '0.24.1';

const zigDir = path.join(toolsDir, 'python', 'ziglang');
const zigbuildBinDir = path.join(toolsDir, 'cargo', 'bin');
const exe = process.platform === 'win32' ? '.exe' : '';

function works(command, args, env = process.env) {
  const result = spawnSync(command, args, { stdio: 'ignore', env });
  return !result.error && result.status === 0;
}

function withPath(dirs) {
  return { ...process.env, PATH: [...dirs, process.env.PATH].join(path.delimiter) };
}

function python() {
  for (const candidate of ['python3', 'python']) {
    if (works(candidate, ['-m', 'pip', '--version'])) return candidate;
  }
  return null;
}

function install(what, command, args, hint) {
  console.error(`[redis-conversation-store] installing ${what} into .tools/ (once): ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error || result.status !== 0) {
    throw new Error(`could not install ${what}${result.error ? `: ${result.error.message}` : ''}. ${hint}`);
  }
}

/**
 * Makes zig and cargo-zigbuild available (installing them into .tools/ when
 * missing) and returns the directories to put in front of PATH for them.
 */
function zigToolchainDirs() {
  const dirs = [];
  if (!works('zig', ['version'])) {
    if (!fs.existsSync(path.join(zigDir, `zig${exe}`))) {
      const py = python();
      if (!py) {
        throw new Error(
          'the old-glibc Linux build needs zig, and neither zig nor pip (to install it) was found.\n' +
            'On Debian: sudo apt-get install -y python3-pip (or put zig on PATH).',
        );
      }
      install('zig', py, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--target', path.join(toolsDir, 'python'), `ziglang==${ZIGLANG_VERSION}`], 'Put zig on PATH, or check that PyPI is reachable.');
    }
    dirs.push(zigDir);
  }
  if (!works('cargo', ['zigbuild', '--help'], withPath(dirs))) {
    if (!fs.existsSync(path.join(zigbuildBinDir, `cargo-zigbuild${exe}`))) {
      install('cargo-zigbuild (a few minutes)', 'cargo', ['install', '--locked', '--quiet', `cargo-zigbuild@${CARGO_ZIGBUILD_VERSION}`, '--root', path.join(toolsDir, 'cargo')], 'Check that crates.io is reachable.');
    }
    dirs.push(zigbuildBinDir);
  }
  const env = withPath(dirs);
  if (!works('zig', ['version'], env) || !works('cargo', ['zigbuild', '--help'], env)) {
    throw new Error('zig or cargo-zigbuild was installed into .tools/ but does not run; delete .tools/ and try again.');
  }
  return dirs;
}

/** The environment to run `cargo zigbuild` with, installing the tools when missing. */
function ensureZigToolchain() {
  return withPath(zigToolchainDirs());
}

/** Whether the tools are already here (without installing anything). */
function zigToolchainPresent() {
  const env = withPath([zigDir, zigbuildBinDir]);
  return works('zig', ['version'], env) && works('cargo', ['zigbuild', '--help'], env);
}

module.exports = { ensureZigToolchain, zigToolchainPresent };

// `node scripts/zig-toolchain.js`: install when missing, then print the
// directories to put on PATH (the release workflow appends them to $GITHUB_PATH).
if (require.main === module) {
  try {
    for (const dir of zigToolchainDirs()) console.log(dir);
  } catch (error) {
    console.error(`[redis-conversation-store] ${error.message}`);
    process.exit(1);
  }
}
