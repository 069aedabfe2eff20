'use strict';
// Copies the published results into README.md between its markers, so the
// README's numbers always come from a bench run, never from a keyboard.
// Each section is `<!-- NAME:start -->` ... `<!-- NAME:end -->`.

const fs = require('node:fs');
const path = require('node:path');

const README = path.join(__dirname, '..', '..', 'README.md');
const RESULTS_DIR = path.join(__dirname, '..', 'results');

/** The README's generated sections and the result pages each is made of. */
const SECTIONS = {
  // `npm run bench` (bench/run.js)
  bench: ['latest.md', 'network.md', 'cluster.md', 'durability.md'],
  // `npm run bench:profiles` (bench/profiles.js)
  profiles: ['profiles.md'],
};

/** Replaces the README's `section` with its result pages (those that exist). */
function updateReadme(section = 'bench') {
  const files = SECTIONS[section];
  if (!files) throw new Error(`no README section ${section}`);
  const start = `<!-- ${section}:start -->`;
  const end = `<!-- ${section}:end -->`;
  const readme = fs.readFileSync(README, 'utf8');
  const from = readme.indexOf(start);
  const to = readme.indexOf(end);
  if (from < 0 || to < from) throw new Error(`README.md has no ${start} ... ${end} section`);
  const parts = files
    .map((file) => path.join(RESULTS_DIR, file))
    .filter((file) => fs.existsSync(file))
    .map((file) => fs.readFileSync(file, 'utf8').trim());
  const content = `${start}\n${parts.join('\n\n')}\n${end}`;
  fs.writeFileSync(README, readme.slice(0, from) + content + readme.slice(to + end.length));
  return 'README.md';
}

module.exports = { updateReadme, SECTIONS };
