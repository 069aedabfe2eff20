'use strict';

// A worker_threads worker terminated while its RedisStore has calls in
// flight must not crash the process, and must not leave the store's calls
// (or the store) alive natively. Each case runs in a child process
// (fixtures/terminated-workers.js), which terminates several busy workers in
// a row: the child must exit by itself, with code 0 and no signal; with
// --counts its main thread also reads the addon's live counts.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawn } = require('node:child_process');

const { startRedis } = require('../test-support');

const CHILD = path.join(__dirname, 'fixtures', 'terminated-workers.js');
const ROUNDS = 4;
/** A child that has not exited by then is stuck (something keeps it alive). */
const CHILD_DEADLINE_MS = 60_000;

/** Runs the child; resolves { code, signal, stdout, stderr, timedOut }. */
function runChild(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, CHILD_DEADLINE_MS);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function checkExit(run) {
  assert.equal(run.timedOut, false, `the child did not exit by itself within ${CHILD_DEADLINE_MS} ms\n${run.stderr}`);
  assert.equal(run.signal, null, `the child died of ${run.signal}\n${run.stderr}`);
  assert.equal(run.code, 0, `the child exited with ${run.code}\n${run.stderr}`);
  const result = JSON.parse(run.stdout.trim().split('\n').pop());
  assert.equal(result.exitCodes.length, ROUNDS);
  // terminate() resolves 1 for a worker it stopped (not one that ended itself).
  assert.deepEqual(result.exitCodes, Array(ROUNDS).fill(1));
  return result;
}

describe('terminating a worker with calls in flight', { concurrency: false }, () => {
  let answering;
  let hung;

  before(async () => {
    [answering, hung] = await Promise.all([startRedis(), startRedis()]);
    // Accepts connections (the kernel does) but never answers: every call
    // made against it stays pending until the store's timeouts.
    hung.pause();
  });

  after(async () => {
    await Promise.all([answering, hung].filter(Boolean).map((server) => server.stop()));
  });

  for (const server of ['answering', 'hung']) {
    it(`server ${server}, addon loaded only by the workers: no crash, the process exits by itself`, async () => {
      const url = (server === 'answering' ? answering : hung).url;
      checkExit(await runChild([url, String(ROUNDS), server]));
    });

    it(`server ${server}, addon in the main thread too: the terminated workers' calls and stores are released`, async () => {
      const url = (server === 'answering' ? answering : hung).url;
      const result = checkExit(await runChild([url, String(ROUNDS), server, '--counts']));
      // The measure can see something: each worker was stopped with calls
      // in flight and its store alive.
      for (const counts of result.atTermination) {
        assert.ok(counts.calls > 0, `no call in flight at termination: ${JSON.stringify(result.atTermination)}`);
        assert.ok(counts.redisStores > 0, JSON.stringify(result.atTermination));
      }
      assert.equal(result.drained.calls, 0, `calls still alive ${result.drained.ms} ms after the last termination`);
      assert.equal(result.drained.redisStores, 0, `stores still alive ${result.drained.ms} ms after the last termination`);
    });
  }
});
