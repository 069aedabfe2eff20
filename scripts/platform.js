'use strict';
// Paths and names the build and the tests share. The platform spelling comes
// from the shipped loader, so the build, the tests and the loader's error
// message agree on one name per machine.

const path = require('node:path');
const { hostPlatform, platformPackageName, isMusl } = require('../loader.js');

const root = path.resolve(__dirname, '..');
const packageJson = require(path.join(root, 'package.json'));
const binaryName = packageJson.napi.binaryName;

/** The addon a source build leaves in the package directory for this machine. */
function localAddonPath(platform = hostPlatform()) {
  return path.join(root, `${binaryName}.${platform}.node`);
}

/**
 * The oldest glibc the Linux glibc builds may need. Built against this symbol
 * set with cargo-zigbuild; checked by __test__/glibc-floor.test.js.
 */
const GLIBC_FLOOR = '2.17';

module.exports = { root, packageJson, binaryName, hostPlatform, platformPackageName, isMusl, localAddonPath, GLIBC_FLOOR };
