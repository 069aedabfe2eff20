//! Busy polling at low concurrency: the tokio worker stays awake between a
//! call's start and its reply, and a moment after, instead of sleeping in
//! `epoll_wait`.
//!
//! A call crosses threads twice (JS → tokio → Redis → tokio → JS), and on a
//! virtual machine waking a sleeping thread on an idle core is slow: at
//! concurrency 1 those wake-ups were most of a `get`'s latency (perf: the
//! worker's time went to parking and unparking). While at most
//! [`MAX_IN_FLIGHT`] calls are in flight, a task keeps the worker polling
//! (each `yield_now` also polls the I/O driver without blocking), so a new
//! call and a reply are picked up at once. It stops once nothing happened
//! for the grace period (`REDIS_STORE_BUSY_POLL_US`, 50 µs by default; 0
//! turns it off), so an idle process lets the worker sleep; and a server
//! whose last reply took longer than [`WAIT_LIMIT_US`] (a network away, not
//! on the same host) is waited for asleep, since polling would burn a core
//! for the whole round trip and still miss the reply. Under load the worker
//! is busy anyway and the task is not started. Measured (`bench/profile.js`,
//! 4 KB, concurrency 1, quiet 2-core VM): get p50 0.115 → 0.072 ms, set
//! 0.165 → 0.141 ms, for more process CPU per call (set 110 → 185 µs).
//!
//! A write wakes the worker ahead: `index.js` calls [`call_expected`] before
//! its `JSON.stringify`, so that the wake-up overlaps the encoding (a 64 KB
//! record takes about 250 µs to encode, past the grace period, so the worker
//! was asleep when its call came). `bench/profile.js`, set 64 KB at
//! concurrency 1, three alternating pairs: 1,769 → 2,121 ops/s (medians), p50
//! 0.470 → 0.444 ms, p99 1.45 → 1.10 ms, for process CPU 527 → 741 µs per
//! call (the worker polls while the record is encoded).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

/// Above this many calls in flight, replies come back to back and the
/// worker rarely sleeps: polling would only take a core from Redis or Node.
pub const MAX_IN_FLIGHT: usize = 4;
const DEFAULT_GRACE_US: u64 = 50;
/// How long the worker polls for a reply since the last call started or
/// settled (a same-host or same-region Redis answers well within it).
const WAIT_LIMIT_US: u64 = 1_000;
const MAX_GRACE_US: u64 = 10_000;

/// How long the worker keeps polling after the last call started or
/// settled; zero turns busy polling off.
static GRACE: LazyLock<Duration> = LazyLock::new(|| {
    let micros = std::env::var("REDIS_STORE_BUSY_POLL_US")
        .ok()
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map_or(DEFAULT_GRACE_US, |micros| micros.min(MAX_GRACE_US));
    Duration::from_micros(micros)
});
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);
/// Microseconds after `EPOCH` of the last call started or settled.
static LAST_ACTIVITY_US: AtomicU64 = AtomicU64::new(0);
/// Microseconds after `EPOCH` until which a call is expected (0: none): see
/// [`call_expected`].
static EXPECTED_UNTIL_US: AtomicU64 = AtomicU64::new(0);
/// Whether the polling task is running (one per process).
static POLLING: AtomicBool = AtomicBool::new(false);
/// Whether the last reply came more than [`WAIT_LIMIT_US`] after the call
/// or reply before it: a server that far away is waited for asleep.
static SLOW_SERVER: AtomicBool = AtomicBool::new(false);

fn now_us() -> u64 {
    u64::try_from(EPOCH.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A call settled (on tokio): the worker keeps polling a while longer, and
/// the time since the last call started or settled says how far the server is.
pub fn call_settled() {
    let now = now_us();
    let previous = LAST_ACTIVITY_US.swap(now, Ordering::Relaxed);
    SLOW_SERVER.store(now.saturating_sub(previous) > WAIT_LIMIT_US, Ordering::Relaxed);
}

/// A call started (on the JS thread): polls until it and the calls after it
/// have been quiet for the grace period, unless the load is too high to need it.
pub fn call_started() {
    if GRACE.is_zero() {
        return;
    }
    LAST_ACTIVITY_US.store(now_us(), Ordering::Relaxed);
    EXPECTED_UNTIL_US.store(0, Ordering::Relaxed);
    start_polling();
}

/// A call is on its way (on the JS thread, before it encodes a record to
/// write): the worker wakes now and polls until the call starts (for up to
/// [`WAIT_LIMIT_US`]), so waking it overlaps the encoding instead of
/// following it.
pub fn call_expected() {
    if GRACE.is_zero() {
        return;
    }
    EXPECTED_UNTIL_US.store(now_us() + WAIT_LIMIT_US, Ordering::Relaxed);
    start_polling();
}

/// Whether the worker is polling now (for the tests).
pub fn polling() -> bool {
    POLLING.load(Ordering::Acquire)
}

fn start_polling() {
    if wanted() && !POLLING.swap(true, Ordering::AcqRel) {
        napi::bindgen_prelude::spawn(poll());
    }
}

fn wanted() -> bool {
    let now = now_us();
    let quiet_for_us = now.saturating_sub(LAST_ACTIVITY_US.load(Ordering::Relaxed));
    let waiting = Waiting {
        in_flight: crate::completion::live_calls(),
        quiet_for_us,
        slow_server: SLOW_SERVER.load(Ordering::Relaxed),
        call_expected: now <= EXPECTED_UNTIL_US.load(Ordering::Relaxed),
    };
    worth_polling(&waiting, GRACE.as_micros() as u64)
}

/// What the polling decision looks at.
struct Waiting {
    in_flight: usize,
    /// Since the last call started or settled.
    quiet_for_us: u64,
    slow_server: bool,
    /// A call is on its way ([`call_expected`]).
    call_expected: bool,
}

/// Polling pays while a call waits for its reply (up to [`WAIT_LIMIT_US`]
/// since the last call started or settled: a server slower than that lets
/// the worker sleep, and so does one whose last reply took longer), for
/// the grace period after the last call settled (the app's next call often
/// follows at once) and while a call is expected; never above
/// [`MAX_IN_FLIGHT`] calls.
fn worth_polling(waiting: &Waiting, grace_us: u64) -> bool {
    match waiting.in_flight {
        0 => waiting.quiet_for_us <= grace_us || waiting.call_expected,
        1..=MAX_IN_FLIGHT => (!waiting.slow_server && waiting.quiet_for_us <= WAIT_LIMIT_US) || waiting.call_expected,
        _ => false,
    }
}

async fn poll() {
    loop {
        while wanted() {
            tokio::task::yield_now().await;
        }
        POLLING.store(false, Ordering::Release);
        // A call that started as this task was stopping saw it running and
        // started none: take the polling back if there is still reason to.
        if !wanted() || POLLING.swap(true, Ordering::AcqRel) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polls(in_flight: usize, quiet_for_us: u64, slow_server: bool, grace_us: u64) -> bool {
        worth_polling(
            &Waiting {
                in_flight,
                quiet_for_us,
                slow_server,
                call_expected: false,
            },
            grace_us,
        )
    }

    #[test]
    fn polls_while_few_calls_wait_on_a_near_server_and_briefly_after() {
        // Idle: only within the grace period after the last call.
        assert!(polls(0, 10, false, 50));
        assert!(!polls(0, 51, false, 50));
        assert!(polls(0, 10, true, 50));
        // Waiting for replies: up to the wait limit, whatever the grace.
        assert!(polls(1, 900, false, 50));
        assert!(polls(MAX_IN_FLIGHT, WAIT_LIMIT_US, false, 0));
        assert!(!polls(1, WAIT_LIMIT_US + 1, false, 50));
        // A server a network away is waited for asleep.
        assert!(!polls(1, 10, true, 50));
        // Under load the worker is busy anyway.
        assert!(!polls(MAX_IN_FLIGHT + 1, 0, false, 50));
    }

    #[test]
    fn an_expected_call_keeps_the_worker_polling_until_it_comes() {
        let expecting = |quiet_for_us, slow_server| Waiting {
            in_flight: 0,
            quiet_for_us,
            slow_server,
            call_expected: true,
        };
        assert!(worth_polling(&expecting(900, false), 50));
        // Woken ahead even for a far server: the wake-up is paid anyway.
        assert!(worth_polling(&expecting(900, true), 50));
        let behind_another = Waiting {
            in_flight: 1,
            ..expecting(5_000, true)
        };
        assert!(worth_polling(&behind_another, 50));
        // Not under load.
        let busy = Waiting {
            in_flight: MAX_IN_FLIGHT + 1,
            ..expecting(0, false)
        };
        assert!(!worth_polling(&busy, 50));
    }
}
