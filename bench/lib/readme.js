'use strict';
// Copies the published results into README.md between its bench markers, so
// the README's numbers always come from a bench run, never from a keyboard.

const fs = require('node:fs');
const path = require('node:path');

const README = path.join(__dirname, '..', '..', 'README.md');
const RESULTS_DIR = path.join(__dirname, '..', 'results');
const START = '<!-- bench:start -->';
const END = '<!-- bench:end -->';

/** Replaces the README's bench section with results/latest.md (+ cluster.md, durability.md, network.md). */
function updateReadme() {
  const readme = fs.readFileSync(README, 'utf8');
  const from = readme.indexOf(START);
  const to = readme.indexOf(END);
  if (from < 0 || to < from) throw new Error(`README.md has no ${START} ... ${END} section`);
  const parts = ['latest.md', 'network.md', 'cluster.md', 'durability.md']
    .map((file) => path.join(RESULTS_DIR, file))
    .filter((file) => fs.existsSync(file))
    .map((file) => fs.readFileSync(file, 'utf8').trim());
  const section = `${START}\n${parts.join('\n\n')}\n${END}`;
  fs.writeFileSync(README, readme.slice(0, from) + section + readme.slice(to + END.length));
  return 'README.md';
}

module.exports = { updateReadme };
