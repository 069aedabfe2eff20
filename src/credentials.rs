//! Credentials that change while the store runs: the app's
//! `credentialsProvider` (node-redis's two shapes, adapted by `index.js`).
//!
//! - Streaming (`subscribe`): `index.js` pushes the initial credentials and
//!   every `onNext` here; the link re-authenticates its live connection in
//!   place (`Link::keep_authenticated`), every cluster node included.
//! - Async (`credentials()`): every new connection asks `index.js` for fresh
//!   credentials through a threadsafe function; nothing is asked per command.
//!
//! New connections, cluster nodes' included, get their credentials through
//! redis-rs's `StreamingCredentialsProvider` hook. redis-rs asks the hook
//! twice per connection: once for the handshake, then for a stream it keeps
//! to re-authenticate. Our streams yield once and end, because the
//! re-authentication that follows a rotation is ours (it retries and warns,
//! where redis-rs's task gives up silently after one refusal). In async
//! mode the second ask takes the credentials the first one fetched (the
//! hand-off), so the app's provider is called once per connection.
//!
//! Every failure on the way (the provider rejects, `onError`, an `AUTH` the
//! server refuses on rotation) goes through [`CredentialSource::failed`]:
//! the one place where it is announced.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::Stream;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use redis::auth::{BasicAuth, StreamingCredentialsProvider};
use redis::RedisResult;
use tokio::sync::{oneshot, watch};

use crate::logger::Logger;

/// The JS side of an async provider: `(requestId) => void`; it answers with
/// `NativeRedisStore._provideCredentials` or `_credentialsFailed`.
pub type RequestFunction = ThreadsafeFunction<u32, (), u32, Status, false, true, 64>;

/// The JS side of a failure: `(message) => void` (index.js hands it to the
/// provider's `onReAuthenticationError`).
pub type FailureFunction = ThreadsafeFunction<String, (), String, Status, false, true, 64>;

/// The user name AUTH needs when the provider gives only a password.
const DEFAULT_USER: &str = "default";

pub enum ProviderKind {
    /// Credentials are pushed by `index.js` (initial, then each `onNext`).
    Streaming,
    /// Credentials are asked for, once per new connection.
    Async(RequestFunction),
}

type Answer = Result<BasicAuth, String>;

pub struct CredentialSource {
    kind: ProviderKind,
    /// The newest credentials a streaming provider gave (`None` until the first).
    latest: watch::Sender<Option<BasicAuth>>,
    pending: Mutex<HashMap<u32, oneshot::Sender<Answer>>>,
    next_request: AtomicU32,
    /// Async mode: what the handshake's ask fetched, for the second ask of
    /// the same connection (see the module comment).
    handoff: Mutex<Option<(BasicAuth, Instant)>>,
    /// How long a new connection waits for credentials: the connect timeout.
    wait_limit: Duration,
    logger: Logger,
    on_failure: Option<FailureFunction>,
}

impl std::fmt::Debug for CredentialSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ProviderKind::Streaming => "streaming",
            ProviderKind::Async(_) => "async",
        };
        f.debug_struct("CredentialSource").field("kind", &kind).finish()
    }
}

impl CredentialSource {
    pub fn new(
        kind: ProviderKind,
        wait_limit: Duration,
        logger: Logger,
        on_failure: Option<FailureFunction>,
    ) -> Arc<Self> {
        Arc::new(CredentialSource {
            kind,
            latest: watch::Sender::new(None),
            pending: Mutex::new(HashMap::new()),
            next_request: AtomicU32::new(1),
            handoff: Mutex::new(None),
            wait_limit,
            logger,
            on_failure,
        })
    }

    pub fn is_streaming(&self) -> bool {
        matches!(self.kind, ProviderKind::Streaming)
    }

    /// Credentials from the app's provider: the answer to `request`, or (no
    /// request) a streaming provider's initial credentials or `onNext`.
    pub fn provide(&self, request: Option<u32>, username: Option<String>, password: String) {
        let auth = BasicAuth::new(
            username
                .filter(|name| !name.is_empty())
                .unwrap_or_else(|| DEFAULT_USER.to_owned()),
            password,
        );
        match request {
            Some(id) => self.answer(id, Ok(auth)),
            None => {
                self.latest.send_replace(Some(auth));
            }
        }
    }

    /// The app's provider failed: the answer to `request`, or (no request) a
    /// streaming provider's `onError` or a failed `subscribe`.
    pub fn provider_failed(&self, request: Option<u32>, message: String) {
        match request {
            Some(id) => self.answer(id, Err(message)),
            None => self.failed(&format!(
                "credentials provider failed: {message}; the store keeps serving on its current connections and \
                 uses the provider's next credentials"
            )),
        }
    }

    /// The one place a credentials failure is announced: a `[STORE]`
    /// warning, and the JS side's failure callback (the provider's
    /// `onReAuthenticationError`).
    pub fn failed(&self, message: &str) {
        self.logger.warn(message);
        if let Some(on_failure) = &self.on_failure {
            // A full queue means JS is not keeping up: the warning above still went out.
            let _ = on_failure.call(message.to_owned(), ThreadsafeFunctionCallMode::NonBlocking);
        }
    }

    /// Each change of a streaming provider's credentials, starting from now.
    pub fn updates(&self) -> watch::Receiver<Option<BasicAuth>> {
        self.latest.subscribe()
    }

    fn answer(&self, id: u32, answer: Answer) {
        let waiting = self.pending.lock().ok().and_then(|mut pending| pending.remove(&id));
        if let Some(waiting) = waiting {
            // The connection attempt may have given up (timeout, close): nobody to tell.
            let _ = waiting.send(answer);
        }
    }

    /// Credentials for a new connection.
    async fn for_new_connection(self: Arc<Self>) -> RedisResult<BasicAuth> {
        match &self.kind {
            ProviderKind::Streaming => {
                let mut latest = self.latest.subscribe();
                let waited = tokio::time::timeout(self.wait_limit, latest.wait_for(Option::is_some)).await;
                match waited {
                    Ok(Ok(current)) => current.clone().ok_or_else(|| no_credentials("none yet")),
                    Ok(Err(_)) => Err(no_credentials("the store is closed")),
                    Err(_) => Err(no_credentials(&format!(
                        "the streaming credentials provider gave none within {} ms (connect timeout)",
                        self.wait_limit.as_millis()
                    ))),
                }
            }
            ProviderKind::Async(request) => {
                if let Some(auth) = self.take_handoff() {
                    return Ok(auth);
                }
                let auth = self.ask(request).await?;
                if let Ok(mut handoff) = self.handoff.lock() {
                    *handoff = Some((auth.clone(), Instant::now()));
                }
                Ok(auth)
            }
        }
    }

    /// The hand-off, if the handshake of a connection still being set up left one.
    fn take_handoff(&self) -> Option<BasicAuth> {
        let mut handoff = self.handoff.lock().ok()?;
        match handoff.take() {
            // Older than a connection setup can last: left by a failed attempt.
            Some((auth, fetched)) if fetched.elapsed() < self.wait_limit => Some(auth),
            _ => None,
        }
    }

    async fn ask(&self, request: &RequestFunction) -> RedisResult<BasicAuth> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (sender, answer) = oneshot::channel();
        if let Ok(mut pending) = self.pending.lock() {
            pending.insert(id, sender);
        }
        let forget = || {
            if let Ok(mut pending) = self.pending.lock() {
                pending.remove(&id);
            }
        };
        if request.call(id, ThreadsafeFunctionCallMode::NonBlocking) != Status::Ok {
            forget();
            return Err(no_credentials("the JavaScript thread did not take the request"));
        }
        match tokio::time::timeout(self.wait_limit, answer).await {
            Ok(Ok(Ok(auth))) => Ok(auth),
            Ok(Ok(Err(message))) => {
                let failure = format!("credentials provider failed: {message}");
                self.failed(&format!("{failure}; the connection attempt will be retried"));
                Err(no_credentials(&failure))
            }
            Ok(Err(_)) => Err(no_credentials("the request was dropped")),
            Err(_) => {
                forget();
                let failure = format!(
                    "credentials provider gave no answer within {} ms (connect timeout)",
                    self.wait_limit.as_millis()
                );
                self.failed(&format!("{failure}; the connection attempt will be retried"));
                Err(no_credentials(&failure))
            }
        }
    }
}

/// A connection could not get credentials: not the server's refusal, so an
/// I/O-like failure (`STORE_UNAVAILABLE`, retried), never `STORE_AUTH`.
fn no_credentials(reason: &str) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::other(format!("no credentials: {reason}")))
}

/// The hook redis-rs calls for each new connection (see the module comment).
#[derive(Clone)]
pub struct ProviderHook(pub Arc<CredentialSource>);

impl StreamingCredentialsProvider for ProviderHook {
    fn subscribe(&self) -> Pin<Box<dyn Stream<Item = RedisResult<BasicAuth>> + Send + 'static>> {
        let source = self.0.clone();
        Box::pin(futures_util::stream::once(source.for_new_connection()))
    }
}
