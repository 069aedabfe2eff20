'use strict';
// The Linux glibc addons must load on old distributions: every versioned
// glibc symbol it imports must exist in the documented floor (GLIBC_FLOOR).
// It reads the dynamic symbol table of the addon the build left in the
// package directory, the same file the packaging test ships.

const { it } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const { hostPlatform, localAddonPath, GLIBC_FLOOR } = require('../scripts/platform.js');

const onLinuxGnu = /^linux-.*-gnu$/.test(hostPlatform());

/** `2.17` → [2, 17], for comparing versions as numbers. */
const parts = (version) => version.split('.').map(Number);
function compareVersions(a, b) {
  const [x, y] = [parts(a), parts(b)];
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

it(`the ${hostPlatform()} addon needs no glibc newer than ${GLIBC_FLOOR}`, { skip: !onLinuxGnu && 'only the Linux glibc addons have a glibc floor' }, (t) => {
  const addon = localAddonPath();
  assert.ok(fs.existsSync(addon), `no addon at ${addon}: run \`node scripts/build.js --glibc-floor\` (npm test does) first`);
  const dump = spawnSync('objdump', ['-T', addon], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.ok(!dump.error, `objdump could not run (${dump.error?.message}); on Debian: sudo apt-get install -y binutils`);
  assert.equal(dump.status, 0, dump.stderr);

  const needs = []; // [symbol, version]: one symbol can be imported at several versions
  for (const line of dump.stdout.split('\n')) {
    const match = /\bGLIBC_(\d+(?:\.\d+)+)\)?\s+(\S+)\s*$/.exec(line);
    if (match) needs.push([match[2], match[1]]);
  }
  assert.ok(needs.length > 0, 'found no versioned glibc symbols: is this a glibc build?');
  const newest = needs.map(([, version]) => version).sort(compareVersions).at(-1);
  t.diagnostic(`${needs.length} glibc symbols; newest version needed: GLIBC_${newest}`);
  const tooNew = needs.filter(([, version]) => compareVersions(version, GLIBC_FLOOR) > 0).map(([symbol, version]) => `${symbol}@GLIBC_${version}`);
  assert.deepEqual(tooNew, [], `symbols newer than glibc ${GLIBC_FLOOR} (rebuild with \`node scripts/build.js --glibc-floor --force\`)`);
});
