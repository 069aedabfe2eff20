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
//! Past [`KEEP_CORE_US`] of polling since the last call started or settled,
//! each turn gives the core away (`sched_yield`): a longer wait is a slow
//! reply or the JS thread working through the last one, and on two cores the
//! threads that need one then (Redis, V8's garbage collector helpers) were
//! queued behind the poller for a scheduler slice. `bench/profile.js`,
//! listByUser 4 KB at concurrency 1, three alternating pairs: 1,431 →
//! 1,508 ops/s (medians), p99 1.61 → 0.88 ms, process CPU 722 → 649 µs per
//! call; `get` 4 KB unchanged (18.0k → 18.3k ops/s, p50 0.051 ms both).
//!
//! A write wakes the worker ahead: `index.js` calls [`call_expected`] before
//! its `JSON.stringify`, so that the wake-up overlaps the encoding (a 64 KB
//! record takes about 250 µs to encode, past the grace period, so the worker
//! was asleep when its call came). `bench/profile.js`, set 64 KB at
//! concurrency 1, three alternating pairs: 1,769 → 2,121 ops/s (medians), p50
//! 0.470 → 0.444 ms, p99 1.45 → 1.10 ms, for process CPU 527 → 741 µs per
//! call (the worker polls while the record is encoded).
//!
//! A far server's reply is polled for from shortly before it is due: the
//! worker waits asleep, but an alarm thread wakes it [`LEAD_US`] ahead of
//! the time the server's last replies took, so that the worker's wake-up
//! (80 µs on a virtual machine, paid on every reply, where a client on the
//! JS thread pays only the JS thread's) overlaps the wait. The lead adapts
//! so that the worker polls about [`TARGET_SPIN_US`] before the reply comes.
//! After the reply it polls three grace periods for the app's next call, and
//! gives its core away at each turn (`sched_yield`), since the JS thread
//! that the reply wakes is often queued behind it. `bench/profile.js`
//! through the bench's 0.5 ms latency proxy, concurrency 1, alternating
//! pairs (medians): `get` 4 KB 778 → 827 ops/s, p50 1.270 → 1.194 ms (the
//! ioredis store: 829 ops/s, 1.176 ms), for process CPU 126 → 313 µs per
//! call; `set` 64 KB 508/554 → 618/622 ops/s, p50 1.65 → 1.55 ms.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, LazyLock, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// Above this many calls in flight, replies come back to back and the
/// worker rarely sleeps: polling would only take a core from Redis or Node.
pub const MAX_IN_FLIGHT: usize = 4;
const DEFAULT_GRACE_US: u64 = 50;
/// How long the worker polls for a reply since the last call started or
/// settled (a same-host or same-region Redis answers well within it).
const WAIT_LIMIT_US: u64 = 1_000;
const MAX_GRACE_US: u64 = 10_000;
/// How long after a call started or settled the worker polls holding its
/// core; past it, each turn gives the core to any thread waiting for one
/// (a same-host reply to a small call comes well within it).
const KEEP_CORE_US: u64 = 50;

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
/// Microseconds after `EPOCH` of the last call settled (on tokio).
static LAST_SETTLED_US: AtomicU64 = AtomicU64::new(0);
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

/// Time at `now` since the last call started or settled.
fn quiet_for_us(now: u64) -> u64 {
    now.saturating_sub(LAST_ACTIVITY_US.load(Ordering::Relaxed))
}

/// A call settled (on tokio): the worker keeps polling a while longer, and
/// the time since the last call started or settled says how far the server is.
pub fn call_settled() {
    let now = now_us();
    let previous = LAST_ACTIVITY_US.swap(now, Ordering::Relaxed);
    LAST_SETTLED_US.store(now, Ordering::Relaxed);
    let waited = now.saturating_sub(previous);
    let slow = waited > WAIT_LIMIT_US;
    SLOW_SERVER.store(slow, Ordering::Relaxed);
    if slow {
        far_reply_came(now, previous, waited);
    }
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
    if claim_polling() {
        napi::bindgen_prelude::spawn(poll(PollingTask));
    }
}

/// Whether polling is wanted and no task holds it yet; if so, the caller's
/// task now does.
fn claim_polling() -> bool {
    wanted() && !POLLING.swap(true, Ordering::AcqRel)
}

fn wanted() -> bool {
    wanted_at(now_us())
}

fn wanted_at(now: u64) -> bool {
    let waiting = Waiting {
        in_flight: crate::completion::live_calls(),
        quiet_for_us: quiet_for_us(now),
        settled_for_us: now.saturating_sub(LAST_SETTLED_US.load(Ordering::Relaxed)),
        slow_server: SLOW_SERVER.load(Ordering::Relaxed),
        call_expected: now <= EXPECTED_UNTIL_US.load(Ordering::Relaxed),
        reply_due: now <= REPLY_DUE_UNTIL_US.load(Ordering::Relaxed),
    };
    worth_polling(&waiting, GRACE.as_micros() as u64)
}

// ---- a far server's reply: polled for from shortly before it is due -------

/// How long before a far server's reply is due the alarm wakes the worker,
/// to begin with; it adapts ([`next_lead_us`]) between the bounds below.
const INITIAL_LEAD_US: u64 = 300;
const MIN_LEAD_US: u64 = 50;
const MAX_LEAD_US: u64 = 1_000;
/// How long the worker should poll before the reply comes: long enough
/// that the alarm's own late wake-ups (tens of µs) seldom miss the reply
/// (50 missed about a third of them), short enough to cost little CPU.
const TARGET_SPIN_US: u64 = 150;
/// After a far server's reply, the worker polls this many grace periods for
/// the app's next call: the JS thread was asleep too, and its wake-up comes
/// first (a back-to-back caller's next call came 40 to 115 µs after the
/// reply through the bench's proxy, past the 50 µs grace).
const FAR_GRACE_FACTOR: u64 = 3;
/// How long past its due time a reply is polled for before the worker
/// sleeps again (a slow command, a busy server).
const LATE_REPLY_US: u64 = 300;

/// The time a far server takes to answer (from a call's start to its
/// settling), smoothed: it follows a shorter time at once and a longer one
/// slowly, so a reply is seldom due before the alarm. 0: none seen yet.
static FAR_REPLY_US: AtomicU64 = AtomicU64::new(0);
/// How long before a far server's reply is due the worker is woken.
static LEAD_US: AtomicU64 = AtomicU64::new(INITIAL_LEAD_US);
/// Until when (µs after `EPOCH`) a far server's reply is polled for (0: not).
static REPLY_DUE_UNTIL_US: AtomicU64 = AtomicU64::new(0);
/// When the alarm last fired, and when polling last began after it.
static ALARM_FIRED_US: AtomicU64 = AtomicU64::new(0);
static POLL_BEGAN_US: AtomicU64 = AtomicU64::new(0);

/// A call is running on tokio: with a far server, the alarm is set for
/// shortly before its reply is due.
pub fn call_running() {
    if GRACE.is_zero() || !SLOW_SERVER.load(Ordering::Relaxed) {
        return;
    }
    let reply_us = FAR_REPLY_US.load(Ordering::Relaxed);
    let lead_us = LEAD_US.load(Ordering::Relaxed);
    if reply_us <= lead_us || crate::completion::live_calls() > MAX_IN_FLIGHT {
        return;
    }
    let started_at = LAST_ACTIVITY_US.load(Ordering::Relaxed);
    let (Some(alarm), Ok(runtime)) = (Alarm::get(), tokio::runtime::Handle::try_current()) else {
        return;
    };
    alarm.set(Due {
        at: started_at + reply_us - lead_us,
        started_at,
        runtime,
    });
}

/// A far server's reply came `waited` µs after the call started (at
/// `started_at`): learns how long such a reply takes, and how early the
/// worker should be woken for the next one.
fn far_reply_came(now: u64, started_at: u64, waited: u64) {
    let reply_us = FAR_REPLY_US.load(Ordering::Relaxed);
    FAR_REPLY_US.store(next_reply_estimate(reply_us, waited), Ordering::Relaxed);
    let fired_at = ALARM_FIRED_US.load(Ordering::Relaxed);
    if fired_at < started_at {
        return; // no alarm for this call (the reply came first, or none was set)
    }
    let began_at = POLL_BEGAN_US.load(Ordering::Relaxed);
    // Polling that had not begun since the alarm fired began too late to matter.
    let polled_us = if began_at >= fired_at {
        now.saturating_sub(began_at)
    } else {
        0
    };
    let lead_us = LEAD_US.load(Ordering::Relaxed);
    LEAD_US.store(next_lead_us(lead_us, polled_us), Ordering::Relaxed);
    REPLY_DUE_UNTIL_US.store(0, Ordering::Relaxed);
}

/// A reply time that follows a shorter one at once and a longer one by an
/// eighth of the difference.
fn next_reply_estimate(estimate_us: u64, waited_us: u64) -> u64 {
    if estimate_us == 0 || waited_us <= estimate_us {
        waited_us
    } else {
        estimate_us + (waited_us - estimate_us) / 8
    }
}

/// The lead that moves the worker's polling before the next reply toward
/// [`TARGET_SPIN_US`]: half of the difference, within the bounds.
fn next_lead_us(lead_us: u64, polled_us: u64) -> u64 {
    let lead = lead_us as i64 + (TARGET_SPIN_US as i64 - polled_us as i64) / 2;
    lead.clamp(MIN_LEAD_US as i64, MAX_LEAD_US as i64) as u64
}

/// The alarm thread: sleeps until the set time, then has the worker poll.
/// One per process, started when a far server is first seen; a plain thread,
/// so that its timer is not tokio's (whose resolution is a millisecond).
struct Alarm {
    due: Mutex<Option<Due>>,
    changed: Condvar,
}

/// When to wake the worker (µs after `EPOCH`), for the call that started at
/// `started_at`: if another call started or settled since, the alarm is
/// stale (its reply came early, or the next call's alarm is due). `runtime`
/// is the worker's: spawning through it after the runtime shut down (the
/// last environment went away) drops the task instead of panicking, as
/// napi-rs's `spawn` would.
struct Due {
    at: u64,
    started_at: u64,
    runtime: tokio::runtime::Handle,
}

impl Alarm {
    /// The process's alarm, or none if its thread could not be started.
    fn get() -> Option<&'static Alarm> {
        static ALARM: OnceLock<Option<&'static Alarm>> = OnceLock::new();
        *ALARM.get_or_init(|| {
            let alarm: &'static Alarm = Box::leak(Box::new(Alarm {
                due: Mutex::new(None),
                changed: Condvar::new(),
            }));
            std::thread::Builder::new()
                .name("redis-store-alarm".into())
                .spawn(move || alarm.run())
                .ok()
                .map(|_| alarm)
        })
    }

    fn set(&self, due: Due) {
        *self.due.lock().unwrap_or_else(PoisonError::into_inner) = Some(due);
        self.changed.notify_one();
    }

    fn run(&self) {
        let mut due = self.due.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let now = now_us();
            due = match &*due {
                None => self.changed.wait(due).unwrap_or_else(PoisonError::into_inner),
                Some(Due { at, .. }) if *at > now => {
                    let timeout = Duration::from_micros(at - now);
                    self.changed
                        .wait_timeout(due, timeout)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                Some(_) => {
                    let fired = due.take();
                    drop(due);
                    if let Some(Due {
                        started_at, runtime, ..
                    }) = fired
                    {
                        if LAST_ACTIVITY_US.load(Ordering::Relaxed) == started_at {
                            reply_due(now, &runtime);
                        }
                    }
                    self.due.lock().unwrap_or_else(PoisonError::into_inner)
                }
            };
        }
    }
}

/// The alarm fired: the worker polls for the reply from now on, for at
/// most the lead and [`LATE_REPLY_US`] past it.
fn reply_due(now: u64, runtime: &tokio::runtime::Handle) {
    let in_flight = crate::completion::live_calls();
    if in_flight == 0 || in_flight > MAX_IN_FLIGHT {
        return;
    }
    let lead_us = LEAD_US.load(Ordering::Relaxed);
    REPLY_DUE_UNTIL_US.store(now + lead_us + LATE_REPLY_US, Ordering::Relaxed);
    ALARM_FIRED_US.store(now, Ordering::Relaxed);
    if POLLING.load(Ordering::Acquire) {
        POLL_BEGAN_US.store(now, Ordering::Relaxed);
    }
    if claim_polling() {
        runtime.spawn(poll(PollingTask));
    }
}

/// What the polling decision looks at.
struct Waiting {
    in_flight: usize,
    /// Since the last call started or settled.
    quiet_for_us: u64,
    /// Since the last call settled.
    settled_for_us: u64,
    slow_server: bool,
    /// A call is on its way ([`call_expected`]).
    call_expected: bool,
    /// A far server's reply is due ([`reply_due`]).
    reply_due: bool,
}

/// Polling pays while a call waits for its reply (up to [`WAIT_LIMIT_US`]
/// since the last call started or settled: a server slower than that lets
/// the worker sleep, and so does one whose last reply took longer), for
/// the grace period after the last call settled (the app's next call often
/// follows at once; [`FAR_GRACE_FACTOR`] times as long after a far
/// server's reply), while a call is expected and while a far server's reply
/// is due; never above [`MAX_IN_FLIGHT`] calls.
fn worth_polling(waiting: &Waiting, grace_us: u64) -> bool {
    let grace_us = if waiting.slow_server {
        grace_us * FAR_GRACE_FACTOR
    } else {
        grace_us
    };
    match waiting.in_flight {
        0 => waiting.quiet_for_us <= grace_us || waiting.call_expected,
        // Within the grace period after a call settled, whatever the
        // server: it counts as in flight until the JS thread has taken it.
        1..=MAX_IN_FLIGHT => {
            waiting.settled_for_us <= grace_us
                || (!waiting.slow_server && waiting.quiet_for_us <= WAIT_LIMIT_US)
                || waiting.call_expected
                || waiting.reply_due
        }
        _ => false,
    }
}

/// Whether a turn of polling ends with `sched_yield`: always for a far
/// server, else once the wait has outlasted [`KEEP_CORE_US`].
fn gives_core_away(slow_server: bool, quiet_for_us: u64) -> bool {
    slow_server || quiet_for_us > KEEP_CORE_US
}

/// The polling task's hold on [`POLLING`]: a task dropped before it ends
/// (its runtime shut down, or it never ran) lets the flag go, so that
/// polling can start again in the next runtime.
struct PollingTask;

impl PollingTask {
    /// The task ended by itself, and has settled the flag itself.
    fn ended(self) {
        std::mem::forget(self);
    }
}

impl Drop for PollingTask {
    fn drop(&mut self) {
        POLLING.store(false, Ordering::Release);
    }
}

async fn poll(task: PollingTask) {
    POLL_BEGAN_US.store(now_us(), Ordering::Relaxed);
    loop {
        loop {
            // One clock read per turn, for both decisions.
            let now = now_us();
            if !wanted_at(now) {
                break;
            }
            tokio::task::yield_now().await;
            // A thread may be queued for this core: after a far server's
            // reply, the JS thread it wakes (the scheduler places a woken
            // thread beside its waker: it waited 20 to 45 µs per call for
            // the polling to end); in a long wait, Redis or V8's helpers.
            if gives_core_away(SLOW_SERVER.load(Ordering::Relaxed), quiet_for_us(now)) {
                std::thread::yield_now();
            }
        }
        POLLING.store(false, Ordering::Release);
        // A call that started as this task was stopping saw it running and
        // started none: take the polling back if there is still reason to.
        if !wanted() || POLLING.swap(true, Ordering::AcqRel) {
            return task.ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_wait_keeps_the_core_and_a_long_or_far_one_gives_it_away() {
        assert!(!gives_core_away(false, 0));
        assert!(!gives_core_away(false, KEEP_CORE_US));
        assert!(gives_core_away(false, KEEP_CORE_US + 1));
        assert!(gives_core_away(false, WAIT_LIMIT_US));
        assert!(gives_core_away(true, 0));
    }

    fn polls(in_flight: usize, quiet_for_us: u64, slow_server: bool, grace_us: u64) -> bool {
        polls_settled(in_flight, quiet_for_us, u64::MAX, slow_server, grace_us)
    }

    fn polls_settled(
        in_flight: usize,
        quiet_for_us: u64,
        settled_for_us: u64,
        slow_server: bool,
        grace_us: u64,
    ) -> bool {
        worth_polling(
            &Waiting {
                in_flight,
                quiet_for_us,
                settled_for_us,
                slow_server,
                call_expected: false,
                reply_due: false,
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
        // A server a network away is waited for asleep, from the call's
        // start; but for the grace period after a call settled (it counts
        // until the JS thread took it).
        assert!(!polls(1, 10, true, 50));
        assert!(polls_settled(1, 10, 10, true, 50));
        assert!(!polls_settled(1, 10, 3 * 50 + 1, true, 50));
        // After a far server's reply, longer: the JS thread wakes first.
        assert!(polls(0, 3 * 50, true, 50));
        assert!(!polls(0, 3 * 50 + 1, true, 50));
        assert!(!polls(0, 51, false, 50));
        // Under load the worker is busy anyway.
        assert!(!polls(MAX_IN_FLIGHT + 1, 0, false, 50));
    }

    #[test]
    fn an_expected_call_keeps_the_worker_polling_until_it_comes() {
        let expecting = |quiet_for_us, slow_server| Waiting {
            in_flight: 0,
            quiet_for_us,
            settled_for_us: u64::MAX,
            slow_server,
            call_expected: true,
            reply_due: false,
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

    #[test]
    fn a_far_reply_that_is_due_is_polled_for() {
        let due = Waiting {
            in_flight: 1,
            quiet_for_us: 900,
            settled_for_us: 900,
            slow_server: true,
            call_expected: false,
            reply_due: true,
        };
        assert!(worth_polling(&due, 50));
        assert!(!worth_polling(
            &Waiting {
                reply_due: false,
                ..due
            },
            50
        ));
        assert!(!worth_polling(
            &Waiting {
                in_flight: MAX_IN_FLIGHT + 1,
                ..due
            },
            50
        ));
    }

    #[test]
    fn the_reply_time_follows_shorter_replies_at_once_and_longer_ones_slowly() {
        assert_eq!(next_reply_estimate(0, 1_200), 1_200);
        assert_eq!(next_reply_estimate(1_200, 1_100), 1_100);
        assert_eq!(next_reply_estimate(1_200, 2_000), 1_300);
    }

    #[test]
    fn the_lead_moves_the_polling_before_a_reply_toward_its_target() {
        // Polled too long before the reply: wake later.
        assert_eq!(next_lead_us(400, TARGET_SPIN_US + 200), 300);
        // Missed the reply (no polling before it): wake earlier.
        assert_eq!(next_lead_us(300, 0), 300 + TARGET_SPIN_US / 2);
        assert_eq!(next_lead_us(300, TARGET_SPIN_US), 300);
        // Within bounds, whatever happened.
        assert_eq!(next_lead_us(MIN_LEAD_US, 10_000), MIN_LEAD_US);
        assert_eq!(next_lead_us(MAX_LEAD_US, 0), MAX_LEAD_US);
    }
}
