//! Acknowledged means replicated (`waitReplicas`).
//!
//! Redis replicates asynchronously: a write the primary acknowledged can be
//! lost when a replica is promoted before it received the write. With
//! `waitReplicas: n`, each write step is sent in one pipeline followed by
//! `WAIT n timeout`, on the same connection, so the primary answers `WAIT`
//! only once `n` replicas have the write (or the timeout passed). `WAIT`
//! counts the connection's replication offset, which covers every write sent
//! on it before, so it must follow the write on that very connection: on a
//! cluster, the pipeline is routed by its keyed command, and the keyless
//! `WAIT` goes with it to the node that took the write.
//!
//! A call whose write was applied but not confirmed rejects with
//! `STORE_NOT_REPLICATED`. `WAIT` blocks the connection it runs on (Redis
//! serves one command at a time per client), so calls queued behind it wait
//! too; `waitTimeoutMs` bounds that wait.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{FromRedisValue, Pipeline, RedisResult, Script, Value};

use crate::connection;
use crate::error::{StoreError, StoreResult};
use crate::logger::Logger;

/// How many replicas must acknowledge a write, and how long `WAIT` may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaAck {
    pub replicas: u32,
    pub timeout: Duration,
}

impl ReplicaAck {
    /// `waitTimeoutMs`, capped at half of the call's own `timeoutMs` when it
    /// was given one (as the default is half of `commandTimeoutMs`), so that
    /// an unconfirmed write still reports its replicas rather than timing out.
    fn wait_timeout_ms(&self) -> u64 {
        let timeout = match connection::call_timeout() {
            Some(call) => self.timeout.min(call / 2),
            None => self.timeout,
        };
        (timeout.as_millis() as u64).max(1)
    }
}

/// What a topology holds: the requirement, and whether replicas were
/// lagging at the last write, so the log says when they stop and start
/// confirming rather than once per write.
pub struct Replication {
    ack: Option<ReplicaAck>,
    lagging: AtomicBool,
}

/// A write step's outcome: its reply, and the replicas that acknowledged it
/// (`None` when none were asked).
pub type Acknowledged<T> = (T, Option<Confirmation>);

/// The answer to `WAIT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// This many replicas acknowledged within `timeout_ms`.
    Acknowledged { acknowledged: i64, timeout_ms: u64 },
    /// `WAIT` answered an error: the server stopped being a primary while
    /// it waited (`UNBLOCKED`), or refused it.
    Interrupted(String),
}

impl Replication {
    pub fn new(ack: Option<ReplicaAck>) -> Self {
        Replication {
            ack,
            lagging: AtomicBool::new(false),
        }
    }

    /// Sends one write step (its commands, in one pipeline) and, when
    /// replicas must acknowledge and `wait` is true, `WAIT` after it in the
    /// same round trip.
    /// Returns the step's last reply (a script's result, or `EXEC`'s). If the
    /// step calls `script` by `EVALSHA` and the server lacks it (a promoted
    /// replica), the script is loaded and the step sent once more.
    pub async fn send<C: ConnectionLike, T: FromRedisValue>(
        &self,
        connection: &mut C,
        step: &Pipeline,
        script: Option<&Script>,
        wait: bool,
    ) -> RedisResult<Acknowledged<T>> {
        // The step is copied (record bytes included) only to append WAIT to it.
        let mut pipeline = Cow::Borrowed(step);
        let timeout_ms = self.ack.filter(|_| wait).map(|ack| {
            let timeout_ms = ack.wait_timeout_ms();
            pipeline.to_mut().cmd("WAIT").arg(ack.replicas).arg(timeout_ms);
            timeout_ms
        });
        let pipeline = pipeline.as_ref();
        let count = pipeline.cmd_iter().count();
        let mut reloaded = false;
        loop {
            let mut replies = connection.req_packed_commands(pipeline, 0, count).await?;
            let wait_reply = match timeout_ms {
                Some(_) => replies.pop(),
                None => None,
            };
            match step_outcome(replies) {
                Err(err) if is_no_script(&err) && !reloaded => {
                    if let Some(script) = script {
                        script.load_async(connection).await?;
                        reloaded = true;
                        continue;
                    }
                    return Err(err);
                }
                Err(err) => return Err(err),
                Ok(value) => {
                    let confirmation = match (wait_reply, timeout_ms) {
                        (Some(reply), Some(timeout_ms)) => Some(match reply.extract_error() {
                            // The write was applied: a failed WAIT is an
                            // unconfirmed write, not a failed one.
                            Err(err) => Confirmation::Interrupted(err.to_string()),
                            Ok(count) => Confirmation::Acknowledged {
                                acknowledged: redis::from_redis_value(count)?,
                                timeout_ms,
                            },
                        }),
                        _ => None,
                    };
                    return Ok((redis::from_redis_value(value)?, confirmation));
                }
            }
        }
    }

    /// Whether the write `what` was acknowledged by enough replicas.
    pub fn confirm(&self, what: &str, confirmation: Option<Confirmation>, logger: &Logger) -> StoreResult<()> {
        let (Some(ack), Some(confirmation)) = (self.ack, confirmation) else {
            return Ok(());
        };
        let detail = match confirmation {
            Confirmation::Acknowledged { acknowledged, .. } if acknowledged >= i64::from(ack.replicas) => {
                if self.lagging.swap(false, Ordering::Relaxed) {
                    logger.info(format!(
                        "replicas confirm writes again ({acknowledged} of {} acknowledged {what})",
                        ack.replicas
                    ));
                }
                return Ok(());
            }
            Confirmation::Acknowledged {
                acknowledged,
                timeout_ms,
            } => format!(
                "only {acknowledged} of {} replicas confirmed it within {timeout_ms} ms",
                ack.replicas
            ),
            Confirmation::Interrupted(reason) => format!("WAIT for its replicas failed: {reason}"),
        };
        if !self.lagging.swap(true, Ordering::Relaxed) {
            logger.warn(format!(
                "replicas are not confirming writes: {what}: {detail}; writes reject with STORE_NOT_REPLICATED \
                 until they do (check the replicas and their link to the primary)"
            ));
        }
        Err(StoreError::NotReplicated {
            what: what.to_owned(),
            detail,
        })
    }
}

/// The first error among a step's replies (a command refused while queued
/// in `MULTI` is answered at once, before `EXECABORT`), else its last reply
/// with any error inside it (`EXEC`'s array) raised.
fn step_outcome(mut replies: Vec<Value>) -> RedisResult<Value> {
    if let Some(position) = replies.iter().position(|reply| matches!(reply, Value::ServerError(_))) {
        return replies.swap_remove(position).extract_error();
    }
    match replies.pop() {
        Some(last) => last.extract_error(),
        None => Ok(Value::Nil),
    }
}

fn is_no_script(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript)
}

/// `EVALSHA` of `script` with its number of keys; the caller adds keys and args.
pub fn evalsha(script: &Script, key_count: usize) -> redis::Cmd {
    let mut command = redis::cmd("EVALSHA");
    command.arg(script.get_hash()).arg(key_count);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(replicas: u32) -> Replication {
        Replication::new(Some(ReplicaAck {
            replicas,
            timeout: Duration::from_millis(100),
        }))
    }

    #[test]
    fn fewer_acknowledgements_than_asked_reject_and_say_how_many() {
        let logger = Logger::default();
        let confirmation = |acknowledged| {
            Some(Confirmation::Acknowledged {
                acknowledged,
                timeout_ms: 100,
            })
        };
        let replication = ack(2);
        let err = match replication.confirm("SET conv:a", confirmation(1), &logger) {
            Err(err) => err,
            Ok(()) => panic!("1 of 2 was accepted"),
        };
        assert_eq!(err.code(), "STORE_NOT_REPLICATED");
        let message = err.to_string();
        assert!(message.contains("applied on the primary"), "{message}");
        assert!(message.contains("1 of 2 replicas"), "{message}");
        assert!(replication.confirm("SET conv:a", confirmation(2), &logger).is_ok());
        assert!(replication.confirm("SET conv:a", confirmation(3), &logger).is_ok());
        let interrupted = Some(Confirmation::Interrupted("UNBLOCKED: instance state changed".into()));
        let err = replication
            .confirm("SET conv:a", interrupted, &logger)
            .map(|()| "accepted");
        assert!(
            matches!(&err, Err(StoreError::NotReplicated { detail, .. }) if detail.contains("UNBLOCKED")),
            "{err:?}"
        );
        // Without the option nothing is asked, and nothing can fail.
        assert!(Replication::new(None).confirm("SET conv:a", None, &logger).is_ok());
    }

    #[test]
    fn a_step_answers_with_its_last_reply() {
        assert!(matches!(
            step_outcome(vec![Value::Okay, Value::Int(3)]),
            Ok(Value::Int(3))
        ));
        assert!(matches!(step_outcome(Vec::new()), Ok(Value::Nil)));
    }
}
