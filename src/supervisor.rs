//! The connection supervisor's state machine, with no I/O: which phase the
//! link is in, what each event does to it, and what is worth telling the
//! user about a transition. The async loop in `connection.rs` performs the
//! I/O each phase calls for and feeds back what happened.
//!
//! ```text
//!   Connecting --Connected--> Ready --CheckDue--> Probing --ProbeOk--> Ready
//!       |  ^                    |                    |
//!       |  +--Lost, Unusable----+--Lost, Unusable----+
//!  ConnectFailed
//!       v
//!   BackingOff --BackoffElapsed--> Connecting          any --Close--> Closed
//! ```
//!
//! While the connection serves (Ready, Probing), a call that timed out or hit
//! an I/O error marks it *stalled* (`CallFailed`): `status` then reads
//! `reconnecting` until a probe answers (`ProbeOk`) or the connection is
//! replaced, so `/health` does not say "connected" for another command
//! timeout while Redis is hung. `CallFailed` and `Unusable` name the
//! connection the call used, so a late failure from a connection that was
//! already replaced changes nothing.

use std::time::{Duration, Instant};

use crate::config::Backoff;
use crate::error::StoreError;
use crate::logger::Level;

/// Failed attempts logged one by one before only every tenth is.
const ATTEMPTS_LOGGED_EACH: u32 = 5;
const ATTEMPTS_LOGGED_EVERY: u32 = 10;

/// What the supervisor is doing, and so what the async loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// An attempt to connect is under way; calls may wait for it.
    Connecting,
    /// The connection serves calls; the loop watches for signs of loss.
    Ready,
    /// The connection still serves calls while a PING checks that it works.
    Probing,
    /// `attempt` attempts in a row failed; the next one starts after `delay`.
    /// Calls fail at once meanwhile.
    BackingOff { attempt: u32, delay: Duration },
    /// For good: no more attempts, every call fails with `STORE_CLOSED`.
    Closed,
}

impl Phase {
    /// A connection is up and serves calls in this phase.
    pub fn serves(self) -> bool {
        matches!(self, Phase::Ready | Phase::Probing)
    }
}

/// What `/health` reads, synchronously.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Before the first connection is up.
    Connecting,
    Ready,
    /// The connection was lost (attempts continue with backoff), or a call
    /// got no answer and a PING is checking the connection.
    Reconnecting,
    Closed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Connecting => "connecting",
            Status::Ready => "ready",
            Status::Reconnecting => "reconnecting",
            Status::Closed => "closed",
        }
    }
}

/// What happened, as the async loop (or `close`) reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Connected,
    /// `jitter` in [0, 1) spreads the next delay (drawn by the caller, so
    /// that the machine stays deterministic).
    ConnectFailed {
        error: StoreError,
        jitter: f64,
    },
    /// A call saw trouble (I/O error, timeout), or the link was quiet for a
    /// heartbeat: time to check that the connection still works.
    CheckDue,
    ProbeOk,
    /// A call on connection `connection` timed out or hit an I/O error:
    /// until a probe answers, the connection is not reported ready.
    CallFailed {
        connection: u64,
        reason: String,
    },
    /// A reply on connection `connection` said the server behind it cannot
    /// serve the store (READONLY: demoted to a replica; LOADING; MASTERDOWN).
    /// It would pass a PING, so it is replaced at once, through the same
    /// address: behind a managed endpoint that now leads to the new primary.
    Unusable {
        connection: u64,
        reason: String,
    },
    /// The connection closed, or failed its probe; says why.
    Lost(String),
    BackoffElapsed,
    Close,
}

/// A transition worth telling the user about: today a log line; JS events
/// ('ready', 'reconnecting', 'end', ...) would be raised from the same place.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Connected {
        /// Attempts that failed before this one.
        failed_attempts: u32,
        /// How long the store was without Redis, when this is a reconnection.
        outage: Option<Duration>,
    },
    ConnectFailed {
        attempt: u32,
        error: StoreError,
        delay: Duration,
    },
    Lost {
        reason: String,
    },
    /// A call got no answer: the connection is being checked.
    Stalled {
        reason: String,
    },
    /// The stalled connection answered its probe: ready again.
    Answered,
    Closed,
}

impl Notice {
    /// The `[STORE]` line for this notice, if it is logged. `url` is redacted.
    pub fn log_line(&self, url: &str) -> Option<(Level, String)> {
        match self {
            Notice::Connected {
                failed_attempts,
                outage: Some(outage),
            } => Some((
                Level::Info,
                format!(
                    "reconnected to {url} after {failed_attempts} failed attempt(s), {:.1} s without Redis",
                    outage.as_secs_f64()
                ),
            )),
            Notice::Connected {
                failed_attempts: 0,
                outage: None,
            } => Some((Level::Info, format!("connected to {url}"))),
            Notice::Connected {
                failed_attempts,
                outage: None,
            } => Some((
                Level::Info,
                format!("connected to {url} after {failed_attempts} failed attempt(s)"),
            )),
            // Every attempt at first, then one line in ten: no flood during a long outage.
            Notice::ConnectFailed { attempt, error, delay }
                if *attempt <= ATTEMPTS_LOGGED_EACH || attempt % ATTEMPTS_LOGGED_EVERY == 0 =>
            {
                Some((
                    Level::Warn,
                    format!(
                        "cannot connect to {url} (attempt {attempt}): {error}; next attempt in {} ms",
                        delay.as_millis()
                    ),
                ))
            }
            Notice::ConnectFailed { .. } => None,
            Notice::Lost { reason } => Some((
                Level::Warn,
                format!("lost the connection to {url}: {reason}; reconnecting"),
            )),
            Notice::Stalled { reason } => Some((
                Level::Warn,
                format!("no answer from {url} ({reason}); checking the connection with PING (status reconnecting)"),
            )),
            Notice::Answered => Some((Level::Info, format!("{url} answers again; the connection serves on"))),
            Notice::Closed => Some((Level::Info, format!("closed the connection to {url}"))),
        }
    }
}

/// The supervisor's whole state. Transitions happen only in [`Supervisor::on`].
#[derive(Debug, Clone)]
pub struct Supervisor {
    backoff: Backoff,
    phase: Phase,
    /// Attempts that failed since the last connection (or since the start).
    failed_attempts: u32,
    /// When the connection was lost; `None` before the first connection and while connected.
    down_since: Option<Instant>,
    ever_connected: bool,
    /// Why the link is down, given to calls that fail fast.
    last_error: Option<StoreError>,
    /// Which connection serves: counts the connections made, so that a call
    /// can say which one failed it (and `stats().reconnections`).
    connection: u64,
    /// A call failed on the serving connection since it last answered.
    stalled: bool,
    /// When `status` last stopped being `Ready` (for `stats().msSinceReady`).
    ready_left_at: Option<Instant>,
}

impl Supervisor {
    /// A supervisor making its first attempt.
    pub fn new(backoff: Backoff) -> Self {
        Supervisor {
            backoff,
            phase: Phase::Connecting,
            failed_attempts: 0,
            down_since: None,
            ever_connected: false,
            last_error: None,
            connection: 0,
            stalled: false,
            ready_left_at: None,
        }
    }

    /// Times a connection came back after the first one.
    pub fn reconnections(&self) -> u32 {
        u32::try_from(self.connection.saturating_sub(1)).unwrap_or(u32::MAX)
    }

    /// How long since the status was last `Ready`: zero while it is, `None`
    /// if it never was.
    pub fn since_ready(&self, now: Instant) -> Option<Duration> {
        if self.status() == Status::Ready {
            return Some(Duration::ZERO);
        }
        self.ready_left_at.map(|left| now.saturating_duration_since(left))
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The serving connection's number (see [`Event::CallFailed`]).
    pub fn connection(&self) -> u64 {
        self.connection
    }

    pub fn status(&self) -> Status {
        match self.phase {
            Phase::Ready | Phase::Probing if self.stalled => Status::Reconnecting,
            Phase::Ready | Phase::Probing => Status::Ready,
            Phase::Closed => Status::Closed,
            Phase::Connecting | Phase::BackingOff { .. } if self.ever_connected => Status::Reconnecting,
            Phase::Connecting | Phase::BackingOff { .. } => Status::Connecting,
        }
    }

    /// Calls that find no connection wait (within their timeout) only while
    /// an attempt is under way.
    pub fn attempting(&self) -> bool {
        self.phase == Phase::Connecting
    }

    pub fn last_error(&self) -> Option<&StoreError> {
        self.last_error.as_ref()
    }

    /// Applies one event at time `now`. Events that do not apply to the
    /// current phase (a late probe result after a close, say) change nothing.
    pub fn on(&mut self, event: Event, now: Instant) -> Option<Notice> {
        let was_ready = self.status() == Status::Ready;
        let notice = self.transition(event, now);
        if was_ready && self.status() != Status::Ready {
            self.ready_left_at = Some(now);
        }
        notice
    }

    fn transition(&mut self, event: Event, now: Instant) -> Option<Notice> {
        match (self.phase, event) {
            (Phase::Closed, _) => None,
            (_, Event::Close) => {
                self.phase = Phase::Closed;
                Some(Notice::Closed)
            }
            (Phase::Connecting, Event::Connected) => {
                let notice = Notice::Connected {
                    failed_attempts: self.failed_attempts,
                    outage: self.down_since.take().map(|since| now.saturating_duration_since(since)),
                };
                self.phase = Phase::Ready;
                self.failed_attempts = 0;
                self.ever_connected = true;
                self.last_error = None;
                self.connection += 1;
                self.stalled = false;
                Some(notice)
            }
            (Phase::Connecting, Event::ConnectFailed { error, jitter }) => {
                self.failed_attempts += 1;
                let attempt = self.failed_attempts;
                let delay = self.backoff.delay(attempt, jitter);
                self.phase = Phase::BackingOff { attempt, delay };
                self.last_error = Some(error.clone());
                Some(Notice::ConnectFailed { attempt, error, delay })
            }
            (Phase::BackingOff { .. }, Event::BackoffElapsed) => {
                self.phase = Phase::Connecting;
                None
            }
            (Phase::Ready, Event::CheckDue) => {
                self.phase = Phase::Probing;
                None
            }
            (Phase::Probing, Event::ProbeOk) => {
                self.phase = Phase::Ready;
                std::mem::take(&mut self.stalled).then_some(Notice::Answered)
            }
            (Phase::Ready | Phase::Probing, Event::CallFailed { connection, reason })
                if connection == self.connection && !self.stalled =>
            {
                self.stalled = true;
                Some(Notice::Stalled { reason })
            }
            (Phase::Ready | Phase::Probing, Event::Unusable { connection, reason })
                if connection == self.connection =>
            {
                Some(self.lose(reason, now))
            }
            (Phase::Ready | Phase::Probing, Event::Lost(reason)) => Some(self.lose(reason, now)),
            _ => None,
        }
    }

    /// The serving connection is gone. The first attempt after a loss goes
    /// at once: a restart (or an endpoint's switch) is often quick.
    fn lose(&mut self, reason: String, now: Instant) -> Notice {
        self.phase = Phase::Connecting;
        self.down_since = Some(now);
        self.stalled = false;
        self.last_error = Some(StoreError::Unavailable(reason.clone()));
        Notice::Lost { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "rediss://cache.example:6380";

    fn backoff() -> Backoff {
        Backoff {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1_000),
        }
    }

    fn refused() -> StoreError {
        StoreError::Unavailable("connect: connection refused (ECONNREFUSED)".to_owned())
    }

    fn failed(jitter: f64) -> Event {
        Event::ConnectFailed {
            error: refused(),
            jitter,
        }
    }

    fn call_failed(connection: u64) -> Event {
        Event::CallFailed {
            connection,
            reason: "GET conv:a: no reply within 400 ms".to_owned(),
        }
    }

    fn unusable(connection: u64) -> Event {
        Event::Unusable {
            connection,
            reason: "SET conv:a: READONLY You can't write against a read only replica.".to_owned(),
        }
    }

    /// A supervisor serving its first connection.
    fn ready(now: Instant) -> Supervisor {
        let mut supervisor = Supervisor::new(backoff());
        supervisor.on(Event::Connected, now);
        supervisor
    }

    /// A supervisor that connected, then lost its connection at `lost_at`.
    fn lost_at(lost_at: Instant) -> Supervisor {
        let mut supervisor = Supervisor::new(backoff());
        supervisor.on(Event::Connected, lost_at);
        supervisor.on(Event::Lost("PING failed".to_owned()), lost_at);
        supervisor
    }

    #[test]
    fn counts_reconnections_and_the_time_since_ready() {
        let start = Instant::now();
        let mut supervisor = Supervisor::new(backoff());
        assert_eq!(supervisor.since_ready(start), None, "never ready yet");
        supervisor.on(Event::Connected, start);
        assert_eq!(supervisor.since_ready(start), Some(Duration::ZERO));
        assert_eq!(
            supervisor.reconnections(),
            0,
            "the first connection is not a reconnection"
        );
        let lost = start + Duration::from_millis(500);
        supervisor.on(Event::Lost("reset".to_owned()), lost);
        assert_eq!(
            supervisor.since_ready(lost + Duration::from_millis(250)),
            Some(Duration::from_millis(250))
        );
        supervisor.on(failed(1.0), lost);
        supervisor.on(Event::BackoffElapsed, lost);
        supervisor.on(Event::Connected, lost + Duration::from_secs(1));
        assert_eq!(supervisor.reconnections(), 1);
        assert_eq!(
            supervisor.since_ready(lost + Duration::from_secs(2)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn starts_connecting_and_lets_calls_wait() {
        let supervisor = Supervisor::new(backoff());
        assert_eq!(supervisor.phase(), Phase::Connecting);
        assert_eq!(supervisor.status(), Status::Connecting);
        assert!(supervisor.attempting());
        assert_eq!(supervisor.last_error(), None);
    }

    #[test]
    fn a_first_connection_is_ready_and_says_so() {
        let mut supervisor = Supervisor::new(backoff());
        let notice = supervisor.on(Event::Connected, Instant::now());
        assert_eq!(supervisor.phase(), Phase::Ready);
        assert_eq!(supervisor.status(), Status::Ready);
        assert!(!supervisor.attempting());
        assert_eq!(
            notice,
            Some(Notice::Connected {
                failed_attempts: 0,
                outage: None
            })
        );
        assert_eq!(
            notice.and_then(|notice| notice.log_line(URL)),
            Some((Level::Info, format!("connected to {URL}")))
        );
    }

    #[test]
    fn failed_attempts_back_off_exponentially_up_to_the_cap() {
        let mut supervisor = Supervisor::new(backoff());
        let now = Instant::now();
        let mut delays = Vec::new();
        for _ in 0..6 {
            supervisor.on(failed(1.0), now);
            let Phase::BackingOff { attempt, delay } = supervisor.phase() else {
                panic!("not backing off: {:?}", supervisor.phase());
            };
            assert_eq!(attempt as usize, delays.len() + 1);
            delays.push(delay.as_millis());
            assert!(!supervisor.attempting(), "calls fail fast while backing off");
            assert_eq!(supervisor.status(), Status::Connecting, "never connected yet");
            supervisor.on(Event::BackoffElapsed, now);
            assert_eq!(supervisor.phase(), Phase::Connecting);
            assert!(supervisor.attempting());
        }
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn jitter_draws_from_the_upper_half_of_the_step() {
        let mut supervisor = Supervisor::new(backoff());
        supervisor.on(failed(0.0), Instant::now());
        assert_eq!(
            supervisor.phase(),
            Phase::BackingOff {
                attempt: 1,
                delay: Duration::from_millis(50)
            }
        );
    }

    #[test]
    fn a_failed_attempt_is_kept_for_calls_that_fail_fast() {
        let mut supervisor = Supervisor::new(backoff());
        let notice = supervisor.on(failed(1.0), Instant::now());
        assert_eq!(supervisor.last_error(), Some(&refused()));
        assert_eq!(
            notice.and_then(|notice| notice.log_line(URL)),
            Some((
                Level::Warn,
                format!(
                    "cannot connect to {URL} (attempt 1): connect: connection refused (ECONNREFUSED); next attempt \
                     in 100 ms"
                )
            ))
        );
    }

    #[test]
    fn the_first_five_attempts_are_logged_then_every_tenth() {
        let logged: Vec<u32> = (1..=40)
            .filter(|&attempt| {
                Notice::ConnectFailed {
                    attempt,
                    error: refused(),
                    delay: Duration::from_millis(5_000),
                }
                .log_line(URL)
                .is_some()
            })
            .collect();
        assert_eq!(logged, [1, 2, 3, 4, 5, 10, 20, 30, 40]);
    }

    #[test]
    fn a_connection_after_failures_counts_them_and_resets() {
        let mut supervisor = Supervisor::new(backoff());
        let now = Instant::now();
        for _ in 0..3 {
            supervisor.on(failed(1.0), now);
            supervisor.on(Event::BackoffElapsed, now);
        }
        let notice = supervisor.on(Event::Connected, now);
        assert_eq!(
            notice.and_then(|notice| notice.log_line(URL)),
            Some((Level::Info, format!("connected to {URL} after 3 failed attempt(s)")))
        );
        assert_eq!(supervisor.last_error(), None);
        supervisor.on(Event::Lost("reset".to_owned()), now);
        supervisor.on(failed(1.0), now);
        assert_eq!(
            supervisor.phase(),
            Phase::BackingOff {
                attempt: 1,
                delay: Duration::from_millis(100)
            },
            "the backoff starts over after a connection"
        );
    }

    #[test]
    fn a_loss_reconnects_at_once_and_reports_why() {
        let lost = Instant::now();
        let supervisor = lost_at(lost);
        assert_eq!(
            supervisor.phase(),
            Phase::Connecting,
            "no delay before the first attempt"
        );
        assert!(supervisor.attempting());
        assert_eq!(supervisor.status(), Status::Reconnecting);
        assert_eq!(
            supervisor.last_error(),
            Some(&StoreError::Unavailable("PING failed".to_owned()))
        );
        let mut supervisor = Supervisor::new(backoff());
        supervisor.on(Event::Connected, lost);
        let notice = supervisor.on(
            Event::Lost("the server closed the connection (ECONNRESET)".to_owned()),
            lost,
        );
        assert_eq!(
            notice.and_then(|notice| notice.log_line(URL)),
            Some((
                Level::Warn,
                format!("lost the connection to {URL}: the server closed the connection (ECONNRESET); reconnecting")
            ))
        );
    }

    #[test]
    fn status_stays_reconnecting_through_failed_attempts_after_a_loss() {
        let now = Instant::now();
        let mut supervisor = lost_at(now);
        supervisor.on(failed(1.0), now);
        assert_eq!(supervisor.status(), Status::Reconnecting);
        assert_eq!(supervisor.last_error(), Some(&refused()));
    }

    #[test]
    fn a_reconnection_reports_the_attempts_and_the_outage() {
        let lost = Instant::now();
        let mut supervisor = lost_at(lost);
        supervisor.on(failed(1.0), lost);
        supervisor.on(Event::BackoffElapsed, lost);
        let notice = supervisor.on(Event::Connected, lost + Duration::from_millis(2_500));
        assert_eq!(
            notice.and_then(|notice| notice.log_line(URL)),
            Some((
                Level::Info,
                format!("reconnected to {URL} after 1 failed attempt(s), 2.5 s without Redis")
            ))
        );
        assert_eq!(supervisor.status(), Status::Ready);
        let again = lost + Duration::from_secs(10);
        supervisor.on(Event::Lost("reset".to_owned()), again);
        let notice = supervisor.on(Event::Connected, again + Duration::from_millis(100));
        assert!(
            matches!(notice, Some(Notice::Connected { failed_attempts: 0, outage: Some(outage) }) if outage == Duration::from_millis(100)),
            "the outage is counted from the latest loss: {notice:?}"
        );
    }

    #[test]
    fn a_probe_keeps_serving_and_either_passes_or_loses_the_connection() {
        let now = Instant::now();
        let mut supervisor = Supervisor::new(backoff());
        supervisor.on(Event::Connected, now);
        assert_eq!(supervisor.on(Event::CheckDue, now), None);
        assert_eq!(supervisor.phase(), Phase::Probing);
        assert!(supervisor.phase().serves());
        assert_eq!(supervisor.status(), Status::Ready);
        supervisor.on(Event::CheckDue, now);
        assert_eq!(supervisor.phase(), Phase::Probing, "one probe at a time");
        assert_eq!(supervisor.on(Event::ProbeOk, now), None);
        assert_eq!(supervisor.phase(), Phase::Ready);
        supervisor.on(Event::CheckDue, now);
        let notice = supervisor.on(Event::Lost("no answer to PING".to_owned()), now);
        assert!(matches!(notice, Some(Notice::Lost { .. })));
        assert_eq!(supervisor.phase(), Phase::Connecting);
        assert!(!supervisor.phase().serves());
    }

    #[test]
    fn close_is_final_from_every_phase_and_said_once() {
        let now = Instant::now();
        let phases: [&[Event]; 5] = [
            &[],
            &[Event::Connected],
            &[Event::Connected, Event::CheckDue],
            &[failed(0.5)],
            &[Event::Connected, Event::Lost("reset".to_owned())],
        ];
        for events in phases {
            let mut supervisor = Supervisor::new(backoff());
            for event in events {
                supervisor.on(event.clone(), now);
            }
            let before = supervisor.phase();
            assert_eq!(
                supervisor.on(Event::Close, now),
                Some(Notice::Closed),
                "from {before:?}"
            );
            assert_eq!(supervisor.phase(), Phase::Closed);
            assert_eq!(supervisor.status(), Status::Closed);
            assert!(!supervisor.attempting());
            for late in [
                Event::Close,
                Event::Connected,
                failed(0.5),
                Event::CheckDue,
                Event::ProbeOk,
                Event::Lost("late".to_owned()),
                Event::BackoffElapsed,
                call_failed(1),
                unusable(1),
            ] {
                assert_eq!(supervisor.on(late.clone(), now), None, "{late:?} after close");
                assert_eq!(supervisor.phase(), Phase::Closed, "{late:?} after close");
            }
        }
        assert_eq!(
            Notice::Closed.log_line(URL),
            Some((Level::Info, format!("closed the connection to {URL}")))
        );
    }

    #[test]
    fn events_that_do_not_fit_the_phase_change_nothing() {
        let now = Instant::now();
        let mut connecting = Supervisor::new(backoff());
        for event in [
            Event::CheckDue,
            Event::ProbeOk,
            Event::BackoffElapsed,
            Event::Lost("x".to_owned()),
            call_failed(0),
            unusable(0),
        ] {
            assert_eq!(connecting.on(event.clone(), now), None, "{event:?}");
            assert_eq!(connecting.phase(), Phase::Connecting, "{event:?}");
        }
        let mut ready = Supervisor::new(backoff());
        ready.on(Event::Connected, now);
        for event in [Event::Connected, failed(0.5), Event::ProbeOk, Event::BackoffElapsed] {
            assert_eq!(ready.on(event.clone(), now), None, "{event:?}");
            assert_eq!(ready.phase(), Phase::Ready, "{event:?}");
        }
    }

    #[test]
    fn statuses_read_as_documented() {
        let names: Vec<&str> = [Status::Connecting, Status::Ready, Status::Reconnecting, Status::Closed]
            .into_iter()
            .map(Status::as_str)
            .collect();
        assert_eq!(names, ["connecting", "ready", "reconnecting", "closed"]);
    }

    #[test]
    fn a_failed_call_makes_status_reconnecting_until_the_probe_answers() {
        let now = Instant::now();
        let mut supervisor = ready(now);
        assert_eq!(supervisor.connection(), 1);
        let notice = supervisor.on(call_failed(1), now);
        assert_eq!(
            notice.and_then(|notice| notice.log_line(URL)),
            Some((
                Level::Warn,
                format!(
                    "no answer from {URL} (GET conv:a: no reply within 400 ms); checking the connection with PING \
                     (status reconnecting)"
                )
            ))
        );
        assert_eq!(
            supervisor.status(),
            Status::Reconnecting,
            "not ready once a call got no answer"
        );
        assert_eq!(supervisor.phase(), Phase::Ready, "the connection still serves calls");
        assert!(!supervisor.attempting());
        assert_eq!(supervisor.on(call_failed(1), now), None, "said once per stall");
        supervisor.on(Event::CheckDue, now);
        assert_eq!(
            supervisor.status(),
            Status::Reconnecting,
            "still not ready while the PING is out"
        );
        let notice = supervisor.on(Event::ProbeOk, now);
        assert_eq!(
            notice.and_then(|notice| notice.log_line(URL)),
            Some((Level::Info, format!("{URL} answers again; the connection serves on")))
        );
        assert_eq!(supervisor.status(), Status::Ready);
        supervisor.on(Event::CheckDue, now);
        assert_eq!(
            supervisor.on(Event::ProbeOk, now),
            None,
            "a heartbeat probe says nothing"
        );
    }

    #[test]
    fn a_call_that_fails_during_a_probe_stalls_too() {
        let now = Instant::now();
        let mut supervisor = ready(now);
        supervisor.on(Event::CheckDue, now);
        assert_eq!(
            supervisor.status(),
            Status::Ready,
            "a heartbeat probe alone keeps ready"
        );
        supervisor.on(call_failed(1), now);
        assert_eq!(supervisor.status(), Status::Reconnecting);
        supervisor.on(Event::Lost("no answer to PING".to_owned()), now);
        assert_eq!(supervisor.status(), Status::Reconnecting);
        supervisor.on(Event::Connected, now);
        assert_eq!(supervisor.connection(), 2);
        assert_eq!(supervisor.status(), Status::Ready, "a new connection starts unstalled");
    }

    #[test]
    fn a_failure_on_a_connection_already_replaced_changes_nothing() {
        let now = Instant::now();
        let mut supervisor = ready(now);
        supervisor.on(Event::Lost("reset".to_owned()), now);
        supervisor.on(Event::Connected, now);
        for late in [call_failed(1), unusable(1)] {
            assert_eq!(supervisor.on(late.clone(), now), None, "{late:?}");
            assert_eq!(supervisor.phase(), Phase::Ready, "{late:?}");
            assert_eq!(supervisor.status(), Status::Ready, "{late:?}");
        }
    }

    #[test]
    fn an_unusable_server_is_replaced_at_once_without_a_probe() {
        let now = Instant::now();
        for probing in [false, true] {
            let mut supervisor = ready(now);
            if probing {
                supervisor.on(Event::CheckDue, now);
            }
            let notice = supervisor.on(unusable(1), now);
            assert_eq!(
                notice.and_then(|notice| notice.log_line(URL)),
                Some((
                    Level::Warn,
                    format!(
                        "lost the connection to {URL}: SET conv:a: READONLY You can't write against a read only \
                         replica.; reconnecting"
                    )
                ))
            );
            assert_eq!(supervisor.phase(), Phase::Connecting, "reconnects at once");
            assert!(supervisor.attempting());
            assert_eq!(supervisor.status(), Status::Reconnecting);
            assert_eq!(supervisor.on(unusable(1), now), None, "one replacement per connection");
            supervisor.on(Event::Connected, now);
            assert_eq!(supervisor.status(), Status::Ready);
        }
    }
}
