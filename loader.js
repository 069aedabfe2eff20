'use strict';
// Loads the native addon through binding.js (the loader `napi build` writes:
// NAPI_RS_NATIVE_LIBRARY_PATH, then a `.node` built in this directory, then
// the prebuilt platform package) and, when nothing loads, replaces its terse
// "Cannot find native binding" with an error that says which package was
// expected, how to get it, and what each attempt failed with.

const { name: packageName, version } = require('./package.json');

/** musl or glibc, from what Node itself was linked against. */
function isMusl() {
  if (process.platform !== 'linux') return false;
  const { header } = process.report.getReport();
  return !header.glibcVersionRuntime;
}

/** This machine, spelled the napi-rs way: `linux-x64-gnu`, `darwin-arm64`, `win32-x64-msvc`, ... */
function hostPlatform() {
  const { platform, arch } = process;
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

/** The prebuilt package that carries the addon for `platform`. */
function platformPackageName(platform = hostPlatform()) {
  return `${packageName}-${platform}`;
}

/** binding.js chains its attempts through `cause`; flatten them, first attempt first. */
function loadAttempts(error) {
  const attempts = [];
  for (let e = error.cause; e && attempts.length < 20; e = e.cause) attempts.unshift(String(e.message ?? e));
  return attempts;
}

function bindingNotFound(error) {
  const expected = platformPackageName();
  const attempts = loadAttempts(error);
  const lines = [
    `${packageName}: no native addon could be loaded for this platform (${hostPlatform()}, Node.js ${process.version}).`,
    `It expected the prebuilt package "${expected}" at version ${version}, installed as an optional dependency.`,
    'To fix it:',
    `  - reinstall with optional dependencies: npm install ${packageName} (not --omit=optional / --no-optional);`,
    `    an older npm can skip them (npm/cli#4828): delete node_modules and package-lock.json, then npm install again;`,
    `  - or install it yourself: npm install ${expected}@${version};`,
    '  - on a platform without a prebuilt package, build from source (see "Build from source" in the README;',
    '    it needs the Rust toolchain) and set NAPI_RS_NATIVE_LIBRARY_PATH to the .node file the build makes.',
  ];
  if (attempts.length > 0) {
    lines.push('Each attempt failed with:', ...attempts.map((message) => `  - ${message.split('\n')[0]}`));
  }
  const wrapped = new Error(lines.join('\n'), { cause: error });
  wrapped.code = 'ERR_NATIVE_BINDING_NOT_FOUND';
  wrapped.expectedPackage = expected;
  return wrapped;
}

function loadBinding() {
  try {
    return require('./binding.js');
  } catch (error) {
    if (error instanceof Error && /Cannot find native binding|Failed to load native binding/.test(error.message)) {
      throw bindingNotFound(error);
    }
    throw error;
  }
}

module.exports = { loadBinding, hostPlatform, platformPackageName, isMusl };
