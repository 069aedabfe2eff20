#!/usr/bin/env node
// `npm test`: the Rust unit tests, then the Node tests (against redis-server
// processes the tests spawn themselves). Stops with a clear message when a
// prerequisite is missing.
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function run(command, args, env = process.env) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', env });
  if (result.error) throw result.error;
  if (result.status !== 0) process.exit(result.status ?? 1);
}

const probes = { 'redis-server': ['--version'], 'redis-cli': ['--version'], openssl: ['version'] };
for (const [tool, args] of Object.entries(probes)) {
  const probe = spawnSync(tool, args, { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) {
    console.error(
      `\n[redis-conversation-store] the tests need ${tool} (they start their own throwaway servers).\n` +
        `On Debian: sudo apt-get install -y ${tool === 'openssl' ? 'openssl' : 'redis-server'}\n`,
    );
    process.exit(1);
  }
}

run('cargo', ['test', '--quiet', '--lib']);

const only = process.argv.slice(2);
const files = only.length
  ? only
  : fs
      .readdirSync(path.join(root, '__test__'))
      .filter((name) => name.endsWith('.test.js') || name.endsWith('.test.mjs'))
      .sort()
      .map((name) => path.join('__test__', name));
run(process.execPath, ['--test', '--test-concurrency=2', ...files]);
