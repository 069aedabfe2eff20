#!/usr/bin/env node
'use strict';
// Summarizes `perf script` output per thread and per cost category:
//
//   perf record -e cpu-clock -F 1999 -g -o /tmp/p.data -- node --perf-basic-prof bench/profile.js ...
//   perf script -i /tmp/p.data | node bench/perf-summary.js [--us-per-op MAIN_CPU_US]
//
// Each sample goes to the category of the first frame (leaf first) that a
// rule recognizes, so kernel and libc time lands on the caller that caused
// it. With --us-per-op (the main thread's CPU µs/op that profile.js printed)
// the main thread's shares are also shown as µs per operation.

const readline = require('node:readline');

/** Ordered: the first rule matching a frame names the category. */
const RULES = [
  [/JsonParser|Builtin_JsonParse/, 'JSON.parse'],
  [/JsonStringifier|Builtin_JsonStringify/, 'JSON.stringify'],
  [/napi_create_string_utf8|NewFromUtf8|Utf8Decoder/, 'string Rust→JS (UTF-8 decode + copy)'],
  [/napi_get_value_string_utf8|WriteUtf8|Utf8Length|String::Utf8Length/, 'string JS→Rust (UTF-8 encode + copy)'],
  [/Scavenge|MarkCompact|Heap::|GCTracer|ConcurrentMarking|MinorMC|Sweeper/, 'V8 GC'],
  [/napi_create_threadsafe_function|napi_release_threadsafe_function|ThreadSafeFunction|napi_call_threadsafe|ThreadsafeFunction/, 'napi threadsafe function (per-call create/call/release)'],
  [/napi_create_promise|napi_resolve_deferred|napi_reject_deferred|JsDeferred|deferred/, 'napi promise'],
  [/napi_|napi::|bindgen_runtime|redis_conversation_store::binding/, 'napi glue / argument conversion'],
  [/uv__async_io|uv__async_send|uv_async_send|uv__wake|AsyncWrap|uv_close|uv__finish_close|uv__make_close_pending|uv__run_closing/, 'libuv async handles'],
  [/uv__io_poll|epoll_wait|uv__hrtime|uv_run/, 'libuv poll (idle wait)'],
  [/ioredis|redis-parser|JS:.*node_modules\/(ioredis|redis-parser|standard-as-callback|denque|cluster-key-slot)/, 'ioredis (JS)'],
  [/Socket|stream_base|StreamBase|LibuvStreamWrap|uv__read|uv__write|uv_try_write|node::.*Write/, 'socket I/O (Node)'],
  [/redis::|redis_conversation_store|combine::|RedisFuture/, 'redis-rs / store (Rust)'],
  [/tokio::|mio::|parking_lot|futex/, 'tokio scheduling'],
  [/JS:|Builtins_|Interpreter|Runtime_/, 'JS / V8 builtins (other)'],
  [/malloc|free|memmove|memcpy/, 'malloc/memcpy (other)'],
];

function categorize(frames) {
  for (const frame of frames) {
    for (const [pattern, name] of RULES) if (pattern.test(frame)) return name;
  }
  return frames[0]?.includes('[kernel') ? 'kernel (other)' : 'other';
}

async function main() {
  const usIndex = process.argv.indexOf('--us-per-op');
  const usPerOp = usIndex > 0 ? Number(process.argv[usIndex + 1]) : null;
  const threads = new Map();
  let header = null;
  let frames = [];
  const flush = () => {
    if (header) {
      const key = `${header.comm}:${header.tid}`;
      if (!threads.has(key)) threads.set(key, { ...header, total: 0, categories: new Map() });
      const thread = threads.get(key);
      const category = categorize(frames);
      thread.total++;
      thread.categories.set(category, (thread.categories.get(category) ?? 0) + 1);
      const leaf = (frames[0] ?? '?').replace(/\+0x[0-9a-f]+/, '').replace(/\s*\(.*\)$/, '').slice(0, 90);
      thread.leaves ??= new Map();
      thread.leaves.set(leaf, (thread.leaves.get(leaf) ?? 0) + 1);
    }
    header = null;
    frames = [];
  };
  for await (const line of readline.createInterface({ input: process.stdin })) {
    if (line.trim() === '') {
      flush();
    } else if (!line.startsWith('\t') && !line.startsWith(' ')) {
      flush();
      const match = /^(.+?)\s+(\d+)(?:\/(\d+))?\s/.exec(line);
      header = match ? { comm: match[1].trim(), tid: Number(match[3] ?? match[2]) } : { comm: '?', tid: 0 };
    } else {
      frames.push(line.trim().replace(/^[0-9a-f]+\s+/, ''));
    }
  }
  flush();
  const all = [...threads.values()].reduce((sum, t) => sum + t.total, 0);
  const byComm = new Map();
  for (const t of threads.values()) byComm.set(t.comm, (byComm.get(t.comm) ?? 0) + t.total);
  console.log(`samples: ${all}; by thread name: ${[...byComm].map(([c, n]) => `${c} ${((100 * n) / all).toFixed(1)}%`).join(', ')}`);
  const main = [...threads.values()].filter((t) => t.comm === 'node').sort((a, b) => b.total - a.total)[0];
  const others = [...threads.values()].filter((t) => t !== main && t.total > all * 0.02).sort((a, b) => b.total - a.total);
  for (const t of [main, ...others]) {
    if (!t) continue;
    console.log(`\n${t === main ? 'main thread' : t.comm === 'node' ? 'node (V8/libuv helper thread)' : t.comm} (tid ${t.tid}): ${t.total} samples, ${((100 * t.total) / all).toFixed(1)}% of all`);
    const rows = t === main ? t.categories : t.leaves;
    if (t !== main) console.log('  (top leaf functions)');
    for (const [name, n] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, t === main ? 30 : 10)) {
      const share = n / t.total;
      if (share < 0.01) continue;
      const us = t === main && usPerOp ? `  ≈ ${(share * usPerOp).toFixed(1)} µs/op` : '';
      console.log(`  ${(share * 100).toFixed(1).padStart(5)}%  ${name}${us}`);
    }
  }
}

main();
