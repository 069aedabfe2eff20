'use strict';

// index.d.ts holds up for a strict TypeScript consumer: __test__/types/ is a
// NodeNext (ESM + CJS) consumer shaped like the chat server, type-checked with
// the repo's own tsc (nothing is emitted or run). A second check feeds tsc a
// deliberately wrong consumer and expects it to fail, proving the first check
// can fail at all. Both run concurrently (each tsc takes a few seconds).

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const typesDir = path.join(__dirname, 'types');
const tsc = path.join(root, 'node_modules', '.bin', 'tsc');

/** Runs tsc with `args` from the repo root; resolves { code, output }. */
function runTsc(args) {
  return new Promise((resolve, reject) => {
    execFile(tsc, args, { cwd: root, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? err.code : 0, output: `${stdout}${stderr}` });
    });
  });
}

describe('index.d.ts', { concurrency: true }, () => {
  it('package.json points TypeScript at index.d.ts and ships it', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
    assert.equal(pkg.types, 'index.d.ts');
    assert.ok(pkg.files.includes('index.d.ts'), 'index.d.ts is in package.json "files"');
    assert.equal(pkg.type, undefined, 'the package is CommonJS (index.d.ts is typed as such)');
  });

  it('type-checks the strict consumer (__test__/types) with no errors', async () => {
    const { code, output } = await runTsc(['-p', path.join(typesDir, 'tsconfig.json')]);
    assert.equal(code, 0, `tsc reported errors:\n${output}`);
  });

  it('fails on a consumer that passes a wrong option type', async () => {
    // Inside __test__/types so that it resolves zod, @types/node and the
    // package exactly as consumer.mts does (the tsconfig extends the real one).
    const stem = `.bad-consumer-${process.pid}`;
    const source = path.join(typesDir, `${stem}.mts`);
    const config = path.join(typesDir, `${stem}.tsconfig.json`);
    fs.writeFileSync(
      source,
      [
        "import { RedisStore, type ConversationStore } from 'redis-conversation-store';",
        "const fine: ConversationStore = new RedisStore({ url: 'rediss://h' });",
        'const wrong: ConversationStore = new RedisStore({ url: 1 });',
        'void [fine, wrong];',
        '',
      ].join('\n'),
    );
    fs.writeFileSync(
      config,
      JSON.stringify({
        extends: './tsconfig.json',
        // The library check is the other test's job; this one only needs the error.
        compilerOptions: { skipLibCheck: true },
        files: [`./${stem}.mts`],
      }),
    );
    try {
      const { code, output } = await runTsc(['-p', config]);
      assert.notEqual(code, 0, `tsc accepted the bad consumer:\n${output}`);
      // It failed for the planted reason (line 3, url: number), not because
      // the package could not be found or something else broke.
      assert.match(output, new RegExp(`${stem}\\.mts\\(3,\\d+\\): error TS2322: Type 'number' is not assignable to type 'string'`), output);
      assert.doesNotMatch(output, /TS2307|TS2792|\(2,\d+\): error/, output);
    } finally {
      fs.rmSync(source, { force: true });
      fs.rmSync(config, { force: true });
    }
  });
});
