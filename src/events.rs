//! Connection events for the JS store's `EventEmitter`: which events a
//! supervisor notice raises (pure, unit-tested), and the sink that carries
//! them to the JS thread.
//!
//! Like the logger, the sink is a threadsafe function that is weak (it never
//! keeps the process alive) and non-blocking (tokio never waits for JS).
//! `'end'` is not raised here: `index.js` emits it when `close()` settles, so
//! it can neither be lost nor arrive before the last call settled.

use std::sync::Arc;

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use napi_derive::napi;

use crate::error::StoreError;
use crate::supervisor::Notice;

/// One event as JS receives it; `index.js` turns `code`/`message` into a `RedisError`.
#[napi(object)]
#[derive(Debug, Clone, PartialEq)]
pub struct LinkEvent {
    /// `ready`, `error` or `reconnecting`.
    pub kind: String,
    /// `reconnecting`: the number of the attempt about to be made (1 for
    /// the first attempt after a loss; the first connection was attempt 1).
    pub attempt: Option<u32>,
    /// `reconnecting`: how long until that attempt, in milliseconds.
    pub delay_ms: Option<f64>,
    /// `error` and `reconnecting`: the failure's `StoreError` code and message.
    pub code: Option<String>,
    pub message: Option<String>,
}

impl LinkEvent {
    fn ready() -> Self {
        LinkEvent {
            kind: "ready".to_owned(),
            attempt: None,
            delay_ms: None,
            code: None,
            message: None,
        }
    }

    fn error(error: &StoreError) -> Self {
        LinkEvent {
            kind: "error".to_owned(),
            code: Some(error.code().to_owned()),
            message: Some(error.to_string()),
            ..LinkEvent::ready()
        }
    }

    fn reconnecting(attempt: u32, delay_ms: f64, error: &StoreError) -> Self {
        LinkEvent {
            kind: "reconnecting".to_owned(),
            attempt: Some(attempt),
            delay_ms: Some(delay_ms),
            ..LinkEvent::error(error)
        }
    }
}

/// The events a notice raises, in the order they are emitted: a failure is
/// reported (`error`) before the retry it leads to (`reconnecting`).
pub fn events_of(notice: &Notice, redacted_url: &str) -> Vec<LinkEvent> {
    match notice {
        Notice::Connected { .. } => vec![LinkEvent::ready()],
        Notice::ConnectFailed { attempt, error, delay } => vec![
            LinkEvent::error(error),
            LinkEvent::reconnecting(attempt.saturating_add(1), delay.as_millis() as f64, error),
        ],
        Notice::Lost { reason } => {
            let error = StoreError::Unavailable(format!("lost the connection to {redacted_url}: {reason}"));
            // The first attempt after a loss goes at once (supervisor.rs).
            vec![LinkEvent::error(&error), LinkEvent::reconnecting(1, 0.0, &error)]
        }
        // A connection that stopped answering serves again: `status` went
        // back to `ready`, and `ready()` callers waiting on it are told.
        Notice::Answered => vec![LinkEvent::ready()],
        // Not yet a failure: the PING that checks the connection decides
        // (`Lost` raises the events then).
        Notice::Stalled { .. } | Notice::Closed => Vec::new(),
    }
}

/// The JS side: `(event) => void`. Unbounded queue: events come a few per
/// connection attempt, and attempts are spaced by the backoff, so the queue
/// stays short even while JS is busy, and none is dropped.
pub type EventFunction = ThreadsafeFunction<LinkEvent, (), LinkEvent, Status, false, true, 0>;

#[derive(Clone, Default)]
pub struct EventSink {
    sink: Option<Arc<EventFunction>>,
}

impl EventSink {
    pub fn new(sink: Option<EventFunction>) -> Self {
        EventSink {
            sink: sink.map(Arc::new),
        }
    }

    pub fn emit(&self, event: LinkEvent) {
        if let Some(sink) = &self.sink {
            // Fails only while the environment is torn down: nobody to tell then.
            let _ = sink.call(event, ThreadsafeFunctionCallMode::NonBlocking);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const URL: &str = "redis://127.0.0.1:7000";

    fn kinds(events: &[LinkEvent]) -> Vec<&str> {
        events.iter().map(|event| event.kind.as_str()).collect()
    }

    #[test]
    fn a_connection_is_ready_whether_first_or_after_a_loss() {
        for outage in [None, Some(Duration::from_secs(2))] {
            let events = events_of(
                &Notice::Connected {
                    failed_attempts: 3,
                    outage,
                },
                URL,
            );
            assert_eq!(events, vec![LinkEvent::ready()]);
        }
    }

    #[test]
    fn a_failed_attempt_is_an_error_then_the_next_attempt_with_its_delay() {
        let error = StoreError::Auth("connect: WRONGPASS".to_owned());
        let events = events_of(
            &Notice::ConnectFailed {
                attempt: 2,
                error: error.clone(),
                delay: Duration::from_millis(400),
            },
            URL,
        );
        assert_eq!(kinds(&events), ["error", "reconnecting"]);
        assert_eq!(events[0].code.as_deref(), Some("STORE_AUTH"));
        assert_eq!(events[1].attempt, Some(3));
        assert_eq!(events[1].delay_ms, Some(400.0));
        assert_eq!(events[1].message, Some(error.to_string()));
    }

    #[test]
    fn a_stall_raises_nothing_until_the_probe_decides_and_an_answer_is_ready_again() {
        let stalled = Notice::Stalled {
            reason: "GET conv:1 timed out".to_owned(),
        };
        assert!(events_of(&stalled, URL).is_empty());
        assert_eq!(events_of(&Notice::Answered, URL), vec![LinkEvent::ready()]);
    }

    #[test]
    fn a_loss_is_an_unavailable_error_then_an_immediate_first_attempt() {
        let events = events_of(
            &Notice::Lost {
                reason: "the server closed the connection".to_owned(),
            },
            URL,
        );
        assert_eq!(kinds(&events), ["error", "reconnecting"]);
        assert_eq!(events[0].code.as_deref(), Some("STORE_UNAVAILABLE"));
        assert!(events[0]
            .message
            .as_deref()
            .is_some_and(|message| message.contains(URL) && message.contains("closed the connection")));
        assert_eq!((events[1].attempt, events[1].delay_ms), (Some(1), Some(0.0)));
    }

    #[test]
    fn closing_raises_nothing_here() {
        assert!(events_of(&Notice::Closed, URL).is_empty());
    }
}
