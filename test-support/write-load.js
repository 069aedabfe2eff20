'use strict';

// A write load for failover tests: writers that `set` fresh records in a
// loop, keeping which ids were acknowledged (and when) and which calls
// failed (and how long they took), until stopped; then a read-back of what
// Redis kept.

const { conversation } = require('./records');
const { delay } = require('./poll');

/**
 * Starts `writers` loops of `store.set(<label>-<n>, record)`. A failed call
 * is followed by a `paceMs` pause (calls that fail fast would spin).
 * @returns {{ acked: Map<string, number>, failures: { err: Error, at: number, took: number }[],
 *   late: { id: string, took: number }[], stop(): Promise<void> }}
 *   `acked`: id → when it was acknowledged; `late`: the calls, acknowledged
 *   or not, that took longer than `lateAfterMs` to settle; `stop()` waits for the writers.
 */
function startWriteLoad(store, label, { writers = 4, paceMs = 10, lateAfterMs = Infinity } = {}) {
  const acked = new Map();
  const failures = [];
  const late = [];
  let running = true;
  let sequence = 0;
  const writer = async () => {
    while (running) {
      const id = `${label}-${++sequence}`;
      const started = Date.now();
      try {
        await store.set(id, conversation(id, `${label}-user`, { sequence }));
        acked.set(id, Date.now());
      } catch (err) {
        const at = Date.now();
        failures.push({ err, at, took: at - started });
        await delay(paceMs);
      }
      const took = Date.now() - started;
      if (took > lateAfterMs) late.push({ id, took });
    }
  };
  const loops = Array.from({ length: writers }, writer);
  return {
    acked,
    failures,
    late,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** The acknowledged ids whose record `store` cannot read back, with when they were acknowledged. */
async function missingWrites(store, acked) {
  const missing = [];
  for (const [id, at] of acked) {
    const record = await store.get(id);
    if (!record) missing.push({ id, at });
    else if (record.externalId !== id) throw new Error(`${id} reads back as ${record.externalId}`);
  }
  return missing;
}

module.exports = { startWriteLoad, missingWrites };
