#!/usr/bin/env node
// `npm publish` guard (prepublishOnly): the root package must already name
// every platform package, at its own version, as an optional dependency —
// which `napi pre-publish -t npm` writes in the release workflow. Publishing
// without them would ship a package that installs and then cannot load.
'use strict';

const { packageJson, platformPackageName } = require('./platform.js');
const { parseTriple } = require('@napi-rs/cli');

const expected = packageJson.napi.targets.map((triple) => platformPackageName(parseTriple(triple).platformArchABI));
const optional = packageJson.optionalDependencies ?? {};
const problems = expected
  .filter((name) => optional[name] !== packageJson.version)
  .map((name) => `optionalDependencies["${name}"] is ${JSON.stringify(optional[name])}, expected "${packageJson.version}"`);
for (const hook of ['preinstall', 'install', 'postinstall']) {
  if (packageJson.scripts?.[hook]) problems.push(`the "${hook}" script must not ship: users install a prebuilt addon`);
}
if (problems.length > 0) {
  console.error(`[redis-conversation-store] not publishing:\n  - ${problems.join('\n  - ')}\nRun \`npx napi pre-publish -t npm\` first (the release workflow does).`);
  process.exit(1);
}
