#!/usr/bin/env node
'use strict';
// Summarizes `perf script` output per thread group and per cost category
// (the rules are in bench/lib/perf-profile.js, shared with bench/profiles.js):
//
//   perf record -k CLOCK_MONOTONIC -e cpu-clock -F 1999 -g -o /tmp/p.data -- node --perf-basic-prof bench/profile.js ...
//   perf script -i /tmp/p.data -F comm,pid,tid,time,period,ip,sym,dso | node bench/perf-summary.js [flags]
//
// Flags:
//   --us-per-op US   the main thread's CPU µs/op that profile.js printed: its shares are shown as µs/op
//   --ops N          operations in the window: every group's time (from the cpu-clock periods) as µs/op
//   --from S --to S  only samples in this window (seconds on the clock perf recorded with)
//   --explain NAME   the top leaf functions behind each category whose name contains NAME
//                    (to see what a rule catches, or what lands in "other")
//
// `bench/profiles.js` does all of this for every operation and writes the tables.

const { parseArgs } = require('node:util');
const { summarizeThreads, groupThreads, ranked, linesOf } = require('./lib/perf-profile');

const { values: args } = parseArgs({
  options: {
    'us-per-op': { type: 'string' },
    ops: { type: 'string' },
    from: { type: 'string' },
    to: { type: 'string' },
    explain: { type: 'string' },
  },
});
const mainUsPerOp = args['us-per-op'] === undefined ? null : Number(args['us-per-op']);
const ops = args.ops === undefined ? null : Number(args.ops);

async function main() {
  const threads = await summarizeThreads(linesOf(process.stdin), {
    from: args.from === undefined ? -Infinity : Number(args.from),
    to: args.to === undefined ? Infinity : Number(args.to),
  });
  const groups = Object.values(groupThreads(threads));
  const all = groups.reduce((sum, g) => sum + g.weight, 0);
  const samples = groups.reduce((sum, g) => sum + g.samples, 0);
  console.log(`samples: ${samples}; by thread group: ${groups.filter((g) => g.samples)
    .map((g) => `${g.label} ${((100 * g.weight) / all).toFixed(1)}%`).join(', ')}`);
  for (const group of groups) {
    if (group.weight < all * 0.02) continue;
    const perOp = ops ? ` ≈ ${(group.weight / 1000 / ops).toFixed(1)} µs/op` : '';
    console.log(`\n${group.label} (${group.threads.map((t) => `${t.comm}:${t.tid}`).join(', ')}): ` +
      `${group.samples} samples, ${((100 * group.weight) / all).toFixed(1)}% of all${perOp}`);
    const byCategory = group.key === 'main' || group.key === 'tokio';
    if (!byCategory) console.log('  (top leaf functions)');
    const rows = ranked(byCategory ? group.categories : group.leaves, group.weight).slice(0, byCategory ? 30 : 10);
    for (const { name, share } of rows) {
      if (share < 0.01) continue;
      let us = '';
      if (ops) us = `  ≈ ${((share * group.weight) / 1000 / ops).toFixed(1)} µs/op`;
      else if (group.key === 'main' && mainUsPerOp) us = `  ≈ ${(share * mainUsPerOp).toFixed(1)} µs/op`;
      console.log(`  ${(share * 100).toFixed(1).padStart(5)}%  ${name}${us}`);
      if (byCategory && args.explain !== undefined && name.includes(args.explain)) {
        const leaves = group.categoryLeaves.get(name);
        for (const leaf of ranked(leaves, group.weight).slice(0, 12)) {
          console.log(`          ${(leaf.share * 100).toFixed(1).padStart(5)}%  ${leaf.name}`);
        }
      }
    }
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
