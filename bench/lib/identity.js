'use strict';
// Which build and which machine a result came from, for the headers of the
// generated result pages.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.join(__dirname, '..', '..');

/** Which build was measured: the addon's hash and time, and the git state of the sources. */
function buildIdentity() {
  const addon = require('../../scripts/platform.js').localAddonPath();
  const git = (args) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  return {
    addonSha256: crypto.createHash('sha256').update(fs.readFileSync(addon)).digest('hex').slice(0, 16),
    addonModified: fs.statSync(addon).mtime.toISOString(),
    gitHead: git(['rev-parse', '--short', 'HEAD']),
    gitDirty: git(['status', '--porcelain', '--', 'src', 'index.js', 'Cargo.toml']).split('\n').filter(Boolean),
  };
}

/** The machine: Node, CPU model and count, OS. */
function machine() {
  return {
    node: process.version,
    v8: process.versions.v8,
    cpu: os.cpus()[0]?.model?.trim() ?? 'unknown',
    cores: os.cpus().length,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  };
}

module.exports = { buildIdentity, machine };
