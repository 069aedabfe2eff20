'use strict';
// bench/lib/perf-profile.js: reading `perf script` text, the measured window,
// thread groups and cost categories (no perf needed: the text is written here).

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { categorize, summarizeThreads, groupThreads, ranked } = require('../bench/lib/perf-profile');

const ROOT = path.join(__dirname, '..');

/** One sample as `perf script -F comm,pid,tid,time,period,ip,sym,dso` prints it. */
function sample(comm, pid, tid, time, period, frames) {
  return [`${comm} ${pid}/${tid} ${time.toFixed(6)}: ${period} `,
    ...frames.map((frame, i) => `\t${(0x1000 + i).toString(16)} ${frame}+0x1f (/some/lib.so)`), ''];
}

test('categories: the nearest known caller names the cost, generic frames only when nothing nearer is known', () => {
  assert.equal(categorize(['__memmove_avx512_unaligned_erms', 'v8::internal::JsonParser<unsigned short>::ScanJsonString',
    `JS:*get ${ROOT}/index.js:323:6`]), 'JSON.parse');
  // V8 runtime work counts for the JS that called it, by file.
  assert.equal(categorize(['v8::internal::LookupIterator::Next', 'JS:*parse /x/node_modules/@redis/client/dist/lib/resp.js:1:1',
    'JS:*worker /x/bench/lib/measure.js:51:24']), 'node-redis (JS)');
  assert.equal(categorize(['v8::internal::Factory::NewJSObject', 'Builtins_InterpreterEntryTrampoline']), 'JS / V8 (other)');
  // libc with no caller on the stack (the addon has no frame pointers).
  assert.equal(categorize(['_int_malloc', '[unknown]']), 'malloc/free/memcpy (caller unknown)');
  assert.equal(categorize(['<redis_conversation_store::completion::JsText as core::convert::From<String>>::from']),
    'store: text conversion (UTF-8 ⇄ UTF-16)');
  // The kernel's network NAPI is not Node-API.
  assert.equal(categorize(['__rcu_read_lock', '__napi_poll', 'net_rx_action', 'tokio::runtime::task::raw::poll']),
    'socket I/O (kernel TCP)');
  // A tokio frame is on every worker stack: it names the sample only when nothing else does.
  assert.equal(categorize(['redis_conversation_store::json_scan::skip_value', 'tokio::runtime::scheduler::multi_thread::worker::run']),
    'store: json_scan');
  assert.equal(categorize(['tokio::runtime::scheduler::multi_thread::worker::run']), 'tokio scheduling');
  assert.equal(categorize(['some_unknown_symbol']), 'other');
});

test('summarizeThreads keeps the window and sums periods; groupThreads sorts threads by process', async () => {
  const lines = [
    ...sample('node', 100, 100, 9.5, 500_000, ['v8::internal::JsonParser<unsigned short>::ParseJson']), // before the window
    ...sample('node', 100, 100, 10.1, 500_000, ['v8::internal::JsonParser<unsigned short>::ParseJson']),
    ...sample('node', 100, 100, 10.2, 500_000, ['_int_free']),
    ...sample('node', 100, 101, 10.3, 500_000, ['v8::internal::ConcurrentMarking::RunMajor']),
    ...sample('redis-conversat', 100, 102, 10.4, 500_000, ['tokio::runtime::park']),
    ...sample('redis-server', 200, 200, 10.5, 500_000, ['dictFind']),
    ...sample('perf', 300, 300, 10.6, 500_000, ['perf_mmap__push']),
    ...sample('node', 100, 100, 11.5, 500_000, ['v8::internal::JsonParser<unsigned short>::ParseJson']), // after it
  ];
  const threads = await summarizeThreads(lines, { from: 10, to: 11 });
  const groups = groupThreads(threads, { nodePid: 100, redisPid: 200 });
  assert.equal(groups.main.samples, 2);
  assert.equal(groups.main.weight, 1_000_000);
  assert.deepEqual(ranked(groups.main.categories, groups.main.weight).map((c) => c.name),
    ['JSON.parse', 'malloc/free/memcpy (caller unknown)']);
  assert.equal(groups.helpers.samples, 1);
  assert.equal(groups.tokio.samples, 1);
  assert.equal(groups.redis.samples, 1);
  assert.equal(groups.other.samples, 1);
  // Without pids: the busiest `node` thread is the main thread, redis-server by its name.
  const guessed = groupThreads(threads);
  assert.equal(guessed.main.threads[0].tid, 100);
  assert.equal(guessed.redis.samples, 1);
});

test('the default `perf script` layout (no -F) is read too', async () => {
  const lines = ['node 4242 [001]  77.000100:     500250 cpu-clock: ', '\t   1234 JS:*worker /x/bench/lib/measure.js:1:1 (/tmp/perf-4242.map)', ''];
  const threads = await summarizeThreads(lines);
  const [thread] = threads.values();
  assert.equal(thread.tid, 4242);
  assert.equal(thread.weight, 500250);
  assert.deepEqual([...thread.categories.keys()], ['bench harness (JS)']);
});
