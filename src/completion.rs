//! Settling JS promises from tokio tasks, cheaply.
//!
//! napi-rs's `async fn` creates (and tears down) a threadsafe function for
//! every call, which is most of the main thread's cost of a small operation.
//! A store instead owns one threadsafe function for all its calls: each call
//! makes a promise on the JS thread, runs on tokio, and hands its outcome to
//! that one function, which resolves the promise back on the JS thread (many
//! outcomes per event-loop wake under load). The function is referenced only
//! while calls are pending, so an idle store never keeps the process alive.
//! A failure is rejected as a JS `Error` carrying the store's `code`.
//!
//! Outcomes wait in the store's own queue ([`Ready`]), and the function is
//! called once per batch, not per outcome: only the outcome that finds the
//! queue unsignalled calls it, and the JS thread takes the whole queue at
//! once. Node's queue behind the function takes its lock per item, and holds
//! it while it signals the event loop, so at concurrency 64 the JS thread
//! queued on that lock behind the worker once per reply (futex waits).
//! A page or a large record ends its batch ([`parsed_alone`]), so that its
//! caller uses it before the next one is made.
//!
//! When the environment goes away with calls in flight (a worker terminated),
//! Node finalizes and frees the function. Tokio threads use the handle only
//! under a read lock of [`Gate`], and the finalizer takes the write lock, so
//! no call can be half-way through the handle when it is freed.

use std::ffi::c_void;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use napi::bindgen_prelude::{External, PromiseRaw, ToNapiValue};
use napi::{sys, Env};

use crate::busy_poll;
use crate::error::{JsCode, StoreError};

/// What an operation resolves with, converted to JS on the JS thread.
pub enum Outcome {
    Unit,
    Text(Option<JsText>),
    /// Strings in order (a page's id/record pairs).
    Texts(Vec<JsText>),
    /// A page's records, resolved as a handle that `RecordPage::take` turns
    /// into strings when JS reads it.
    Page(Vec<JsText>),
    Number(f64),
}

/// A `listByUser` page whose records become JS strings only when JS asks
/// (`takeRecords`), not when the promise is settled. Node settles many
/// promises per wake of the JS thread and runs their continuations only
/// after the last: with the strings made at settling, every page of the
/// batch was alive at once (at c=64, tens of 400 KB pages of 4 KB records),
/// past V8's young generation, so each scavenge copied them and promoted
/// them to the old one. Made when read, a page's strings die with its
/// parse, before the next page's are made.
pub struct RecordPage {
    texts: Vec<JsText>,
    /// Whether other calls were in flight when it settled (`JsText::into_js`).
    overlapping: bool,
}

impl RecordPage {
    /// The page's records, once (none after), as a page of its own that
    /// becomes a JS array of strings.
    pub fn take(&mut self) -> RecordPage {
        RecordPage {
            texts: std::mem::take(&mut self.texts),
            overlapping: self.overlapping,
        }
    }
}

impl ToNapiValue for RecordPage {
    unsafe fn to_napi_value(env: sys::napi_env, page: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: JS thread (trait contract).
        unsafe { texts_to_js(env, page.texts, page.overlapping) }
    }
}

/// Text prepared on tokio in the form V8 stores, so that making the JS
/// string is a copy, not a UTF-8 decode on the JS thread: ASCII becomes a
/// one-byte string, anything else a two-byte (UTF-16) one. (Measured on
/// 64 KB chat records: the JS thread's CPU per `get` fell by about a third.)
pub enum JsText {
    Ascii(String),
    Utf16(Vec<u16>),
}

impl From<String> for JsText {
    fn from(text: String) -> Self {
        if text.is_ascii() {
            return JsText::Ascii(text);
        }
        JsText::Utf16(crate::text::utf8_to_utf16(&text))
    }
}

/// From this many UTF-16 units, a record is handed to V8 rather than
/// copied (`JsText::into_js`), while other calls are in flight. Such a copy
/// is past what V8 copies cheaply: a 64 KB chat record (about 128 KB of
/// UTF-16) goes to large-object space, on fresh pages each time, and a
/// page of them outlives a scavenge. A 4 KB record's copy is cheap and
/// usually dies young: handing those over too made `get` 4 KB at c=64 fall
/// from 50k to 41k ops/s, and a mixed 4 KB workload (`bench/memory.js`)
/// from 18.2k to 16.4k, even though `listByUser` 4 KB alone at c=64 gained
/// (680 → 930 ops/s).
const HAND_OVER_MIN_UNITS: usize = 16 * 1024;

impl JsText {
    /// Makes the JS string. With `overlapping` (other calls of the store in
    /// flight) and a two-byte text from `HAND_OVER_MIN_UNITS`, the buffer
    /// becomes the string's own storage (an external string, on a Node that
    /// has them), freed when V8 collects it, instead of being copied into
    /// V8's heap. At c=64: `listByUser` 64 KB 56 → 84 ops/s (JS thread
    /// 17.4 → 11.8 ms per call), `get` 64 KB 3.1k → 6.0k ops/s (JS thread
    /// 320 → 165 µs per call). Only while calls overlap: then the JS thread
    /// limits throughput. A call alone waits for the worker, which, as the
    /// buffers it hands over live until V8 collects them, converts into
    /// fresh memory each time: handing over at c=1 slowed `get` 64 KB from
    /// 3.7k to 2.8k ops/s.
    unsafe fn into_js(self, env: sys::napi_env, overlapping: bool) -> napi::Result<sys::napi_value> {
        let mut value = ptr::null_mut();
        // SAFETY: JS thread (caller's contract); pointers and lengths from live buffers.
        let status = unsafe {
            match self {
                JsText::Ascii(ascii) => {
                    sys::napi_create_string_latin1(env, ascii.as_ptr().cast(), ascii.len() as isize, &mut value)
                }
                JsText::Utf16(units) if overlapping && units.len() >= HAND_OVER_MIN_UNITS && external_strings(env) => {
                    external_utf16(env, units, &mut value)
                }
                JsText::Utf16(units) => {
                    sys::napi_create_string_utf16(env, units.as_ptr(), units.len() as isize, &mut value)
                }
            }
        };
        check(status, "creating a string")?;
        Ok(value)
    }
}

impl ToNapiValue for JsText {
    unsafe fn to_napi_value(env: sys::napi_env, text: Self) -> napi::Result<sys::napi_value> {
        // SAFETY: JS thread (trait contract).
        unsafe { text.into_js(env, false) }
    }
}

/// Whether this Node has `node_api_create_external_string_utf16` (20.4 and
/// later; `engines` allows 20.0). Asked once per process.
fn external_strings(env: sys::napi_env) -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let mut version: *const sys::napi_node_version = ptr::null();
        // SAFETY: JS thread; Node owns the returned struct for the process's life.
        let status = unsafe { sys::napi_get_node_version(env, &mut version) };
        if status != sys::Status::napi_ok || version.is_null() {
            return false;
        }
        // SAFETY: non-null, from Node, never freed.
        let version = unsafe { &*version };
        (version.major, version.minor) >= (20, 4)
    })
}

/// Hands `units` to V8 as an external two-byte string. On success the
/// finalizer owns the buffer (V8 calls it at once when it chose to copy, or
/// when it collects the string); on failure V8 never calls it, so the buffer
/// is freed here.
///
/// V8 does not count an external string's buffer as memory it should
/// collect for, so the buffer is reported (`napi_adjust_external_memory`)
/// until its finalizer runs. Unreported, the buffers of strings that had
/// outlived a scavenge waited for a full collection, which V8 saw no reason
/// to start: `bench/memory.js` (500,000 mixed calls at c=64) ended at
/// 1.5 GB of RSS against 104 MB when copying.
unsafe fn external_utf16(env: sys::napi_env, units: Vec<u16>, value: &mut sys::napi_value) -> sys::napi_status {
    let mut units = ManuallyDrop::new(units);
    let handed = Box::into_raw(Box::new(Handed {
        len: units.len(),
        capacity: units.capacity(),
    }));
    let mut copied = false;
    let mut total = 0;
    // SAFETY: JS thread (caller's contract); the buffer stays allocated until
    // the finalizer rebuilds the Vec from these same parts. Reported before
    // the string is made, since a copying V8 runs the finalizer within the call.
    unsafe {
        sys::napi_adjust_external_memory(env, (*handed).bytes(), &mut total);
        let status = sys::node_api_create_external_string_utf16(
            env,
            units.as_mut_ptr(),
            units.len() as isize,
            Some(free_handed_over),
            handed.cast(),
            value,
            &mut copied,
        );
        if status != sys::Status::napi_ok {
            sys::napi_adjust_external_memory(env, -(*handed).bytes(), &mut total);
            drop(Box::from_raw(handed));
            ManuallyDrop::drop(&mut units);
        }
        status
    }
}

/// The parts of a handed-over buffer its finalizer rebuilds it from.
struct Handed {
    len: usize,
    capacity: usize,
}

impl Handed {
    fn bytes(&self) -> i64 {
        (self.capacity * std::mem::size_of::<u16>()) as i64
    }
}

/// The finalizer of a string made by `external_utf16`: frees its buffer and
/// takes it off V8's count. It calls nothing but that count (allowed of a
/// finalizer that may run inside a GC).
unsafe extern "C" fn free_handed_over(env: sys::node_api_basic_env, data: *mut c_void, handed: *mut c_void) {
    // SAFETY: `handed` is the box `external_utf16` made for this very buffer,
    // and V8 calls the finalizer exactly once.
    unsafe {
        let handed = *Box::from_raw(handed.cast::<Handed>());
        let mut total = 0;
        sys::napi_adjust_external_memory(env.cast(), -handed.bytes(), &mut total);
        drop(Vec::from_raw_parts(data.cast::<u16>(), handed.len, handed.capacity));
    }
}

/// One threadsafe function shared by every call of a store.
#[derive(Clone)]
pub struct Completer {
    shared: Arc<Shared>,
}

struct Shared {
    tsfn: sys::napi_threadsafe_function,
    /// Calls whose promise is not settled yet; touched on the JS thread only.
    pending: AtomicUsize,
    gate: Arc<Gate>,
    ready: Mutex<Ready>,
}

/// Outcomes that reached the store's queue and wait for the JS thread.
#[derive(Default)]
struct Ready {
    settlements: Vec<Settlement>,
    /// Whether the function was called for them (and has not taken them yet).
    signalled: bool,
}

/// `true` once Node finalized the function (environment teardown): the
/// handle is gone and must not be called or released any more.
type Gate = RwLock<bool>;

/// Runs `use_handle` unless the function was finalized, holding the gate
/// for reading so the finalizer waits until it is done.
fn unless_finalized<R>(gate: &Gate, use_handle: impl FnOnce() -> R) -> Option<R> {
    let finalized = gate.read().unwrap_or_else(PoisonError::into_inner);
    (!*finalized).then(use_handle)
}

// SAFETY: N-API threadsafe functions may be called and released from any
// thread; referencing and unreferencing happen on the JS thread only.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: not finalized (checked under the gate), so the handle is
        // valid; this is its last use.
        unless_finalized(&self.gate, || unsafe {
            sys::napi_release_threadsafe_function(self.tsfn, sys::ThreadsafeFunctionReleaseMode::release);
        });
    }
}

/// Node's finalizer of the function: closes the gate before Node frees it.
unsafe extern "C" fn mark_finalized(_env: sys::napi_env, data: *mut c_void, _hint: *mut c_void) {
    // SAFETY: `data` is the `Arc` leaked for this callback in `Completer::new`.
    let gate = unsafe { Arc::from_raw(data.cast::<Gate>().cast_const()) };
    *gate.write().unwrap_or_else(PoisonError::into_inner) = true;
}

/// Calls started and not yet settled or abandoned, across every store and
/// environment of the process: what a terminated worker could leak.
static LIVE_CALLS: AtomicUsize = AtomicUsize::new(0);

/// The number of calls in flight (for the worker_threads test).
pub fn live_calls() -> usize {
    LIVE_CALLS.load(Ordering::Relaxed)
}

/// One unit of a process-wide count (e.g. [`LIVE_CALLS`]) for as long as it
/// lives, wherever it ends.
pub struct Counted(&'static AtomicUsize);

impl Counted {
    pub fn new(count: &'static AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Counted(count)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An outcome on its way to the JS thread.
struct Settlement {
    deferred: SendableDeferred,
    outcome: Result<Outcome, StoreError>,
    _live: Counted,
}

impl Shared {
    fn ready(&self) -> std::sync::MutexGuard<'_, Ready> {
        self.ready.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every queued outcome, leaving the queue empty and unsignalled: the
    /// next outcome calls the function again.
    fn take_ready(&self) -> Vec<Settlement> {
        let mut ready = self.ready();
        ready.signalled = false;
        std::mem::take(&mut ready.settlements)
    }

    /// Queues an outcome (on tokio), and calls the function unless a call
    /// for the queue is already on its way to the JS thread.
    fn deliver(self: &Arc<Self>, settlement: Settlement) {
        self.enqueue(|queued| queued.push(settlement));
    }

    /// Puts outcomes taken but not settled back at the head of the queue (on
    /// the JS thread), and calls the function for them unless a call is on
    /// its way already.
    fn put_back(self: &Arc<Self>, settlements: Vec<Settlement>) {
        self.enqueue(|queued| {
            let later = std::mem::replace(queued, settlements);
            queued.extend(later);
        });
    }

    /// Changes the queue with `add`, then calls the function unless a call
    /// for the queue is already on its way.
    fn enqueue(self: &Arc<Self>, add: impl FnOnce(&mut Vec<Settlement>)) {
        let signal = {
            let mut ready = self.ready();
            add(&mut ready.settlements);
            !std::mem::replace(&mut ready.signalled, true)
        };
        if signal {
            self.signal();
        }
    }

    /// Calls the function for the queue (which `enqueue` marked signalled).
    fn signal(self: &Arc<Self>) {
        let data = Arc::into_raw(self.clone()).cast_mut().cast::<c_void>();
        // SAFETY: the gate keeps the handle alive during the call; on
        // success the JS thread takes the `Arc` back.
        let status = unless_finalized(&self.gate, || unsafe {
            sys::napi_call_threadsafe_function(self.tsfn, data, sys::ThreadsafeFunctionCallMode::nonblocking)
        });
        if status != Some(sys::Status::napi_ok) {
            // The environment is gone or going: nobody is waiting any more.
            // SAFETY: the call did not take ownership.
            drop(unsafe { Arc::from_raw(data.cast::<Shared>().cast_const()) });
            // Unsignalled, so that each later outcome tries (and drops) too.
            drop(self.take_ready());
        }
    }
}

fn check(status: sys::napi_status, what: &str) -> napi::Result<()> {
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(napi::Error::new(
            napi::Status::GenericFailure,
            format!("{what} failed (napi status {status})"),
        ))
    }
}

impl Completer {
    pub fn new(env: &Env) -> napi::Result<Self> {
        let raw_env = env.raw();
        let mut name = ptr::null_mut();
        let mut tsfn = ptr::null_mut();
        let gate = Arc::new(Gate::new(false));
        let finalize_data = Arc::into_raw(gate.clone()).cast_mut().cast::<c_void>();
        // SAFETY: plain N-API calls on the JS thread with valid out-pointers.
        unsafe {
            check(
                sys::napi_create_string_utf8(raw_env, c"redis-conversation-store".as_ptr(), 24, &mut name),
                "napi_create_string_utf8",
            )?;
            check(
                sys::napi_create_threadsafe_function(
                    raw_env,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    name,
                    0, // unbounded queue: a settlement must never be dropped or block tokio
                    1,
                    finalize_data,
                    Some(mark_finalized),
                    ptr::null_mut(),
                    Some(settle_on_js_thread),
                    &mut tsfn,
                ),
                "napi_create_threadsafe_function",
            )?;
            check(
                sys::napi_unref_threadsafe_function(raw_env, tsfn),
                "napi_unref_threadsafe_function",
            )?;
        }
        Ok(Completer {
            shared: Arc::new(Shared {
                tsfn,
                pending: AtomicUsize::new(0),
                gate,
                ready: Mutex::default(),
            }),
        })
    }

    /// Returns a promise (on the JS thread) settled with what `work` yields on tokio.
    pub fn spawn<'env, T, F>(&self, env: &'env Env, work: F) -> napi::Result<PromiseRaw<'env, T>>
    where
        F: Future<Output = Result<Outcome, StoreError>> + Send + 'static,
    {
        let raw_env = env.raw();
        let mut deferred = ptr::null_mut();
        let mut promise = ptr::null_mut();
        // SAFETY: JS thread, valid out-pointers.
        unsafe {
            check(
                sys::napi_create_promise(raw_env, &mut deferred, &mut promise),
                "napi_create_promise",
            )?
        };
        if self.shared.pending.fetch_add(1, Ordering::Relaxed) == 0 {
            // A pending call keeps the process alive until it settles.
            // SAFETY: JS thread, live handle.
            unsafe {
                check(
                    sys::napi_ref_threadsafe_function(raw_env, self.shared.tsfn),
                    "napi_ref_threadsafe_function",
                )?
            };
        }
        let deferred = SendableDeferred(deferred);
        let shared = self.shared.clone();
        let live = Counted::new(&LIVE_CALLS);
        busy_poll::call_started();
        crate::driver::run(async move {
            busy_poll::call_running();
            let outcome = work.await;
            busy_poll::call_settled();
            shared.deliver(Settlement {
                deferred,
                outcome,
                _live: live,
            });
        });
        Ok(PromiseRaw::new(raw_env, promise))
    }
}

/// A deferred handle crossing to tokio and back; only the JS thread uses it.
struct SendableDeferred(sys::napi_deferred);
// SAFETY: the pointer is only carried by tokio, never dereferenced there.
unsafe impl Send for SendableDeferred {}

impl SendableDeferred {
    fn into_inner(self) -> sys::napi_deferred {
        self.0
    }
}

/// The function's callback: settles the outcomes queued so far, up to the
/// first that is parsed alone ([`parsed_alone`]), and calls the function
/// again for the rest.
unsafe extern "C" fn settle_on_js_thread(
    env: sys::napi_env,
    _js: sys::napi_value,
    _ctx: *mut c_void,
    data: *mut c_void,
) {
    if data.is_null() {
        return;
    }
    // SAFETY: `data` is the `Arc` handed over in `Shared::deliver`.
    let shared = unsafe { Arc::from_raw(data.cast::<Shared>().cast_const()) };
    let batch = shared.take_ready();
    if env.is_null() {
        return; // the function is being torn down with the environment
    }
    let mut batch = batch.into_iter();
    while let Some(settlement) = batch.next() {
        let parsed_alone = parsed_alone(&settlement);
        // SAFETY: JS thread (Node calls this callback there).
        unsafe { settle(env, &shared, settlement) };
        if parsed_alone && batch.len() > 0 {
            shared.put_back(batch.collect());
            return;
        }
    }
}

/// Whether an outcome is settled in a callback of its own: a page, or a
/// record past `HAND_OVER_MIN_UNITS`. Node runs the promise continuations
/// once the callback returns: settled together, every such outcome of the
/// batch would be parsed before any caller had used (and dropped) its own,
/// all alive at once, and V8's scavenges copied and promoted them. Alone,
/// each is parsed and used before the next is settled (the function is
/// called again for the rest, in the same turn of the event loop).
/// `bench/profile.js` at c=64, alternating pairs (medians): listByUser 4 KB
/// 1,153 → 1,287 pages/s (JS thread busy 868 → 776 µs per page),
/// listByUser 64 KB 81 → 96, `get` 64 KB 7,264 → 8,648 ops/s. A 4 KB
/// `get` alone per callback fell from 111k to 92k ops/s: small outcomes
/// stay batched.
fn parsed_alone(settlement: &Settlement) -> bool {
    match &settlement.outcome {
        Ok(Outcome::Page(_)) => true,
        Ok(Outcome::Text(Some(JsText::Utf16(units)))) => units.len() >= HAND_OVER_MIN_UNITS,
        _ => false,
    }
}

/// Settles one promise; each deferred is settled exactly once, here.
unsafe fn settle(env: sys::napi_env, shared: &Shared, settlement: Settlement) {
    let Settlement {
        deferred,
        outcome,
        _live,
    } = settlement;
    let deferred = deferred.into_inner();
    // SAFETY: JS thread (caller's contract).
    unsafe {
        let overlapping = shared.pending.load(Ordering::Relaxed) > 1;
        match outcome.map(|value| outcome_to_js(env, value, overlapping)) {
            Ok(Ok(value)) => {
                sys::napi_resolve_deferred(env, deferred, value);
            }
            Ok(Err(err)) => reject(env, deferred, JsCode::Napi(err.status), &err.reason),
            Err(err) => reject(env, deferred, JsCode::Store(err.code()), &err.to_string()),
        }
        if shared.pending.fetch_sub(1, Ordering::Relaxed) == 1 {
            sys::napi_unref_threadsafe_function(env, shared.tsfn);
        }
    }
}

/// `overlapping`: other calls of the store are in flight (`JsText::into_js`).
unsafe fn outcome_to_js(env: sys::napi_env, outcome: Outcome, overlapping: bool) -> napi::Result<sys::napi_value> {
    // SAFETY: JS thread (caller's contract).
    unsafe {
        match outcome {
            Outcome::Unit => <()>::to_napi_value(env, ()),
            Outcome::Text(None) => Option::<JsText>::to_napi_value(env, None),
            Outcome::Text(Some(text)) => text.into_js(env, overlapping),
            Outcome::Texts(texts) => texts_to_js(env, texts, overlapping),
            Outcome::Page(texts) => External::to_napi_value(env, External::new(RecordPage { texts, overlapping })),
            Outcome::Number(number) => f64::to_napi_value(env, number),
        }
    }
}

/// `texts` as a JS array of strings.
unsafe fn texts_to_js(env: sys::napi_env, texts: Vec<JsText>, overlapping: bool) -> napi::Result<sys::napi_value> {
    let mut array = ptr::null_mut();
    // SAFETY: JS thread (caller's contract).
    unsafe {
        check(
            sys::napi_create_array_with_length(env, texts.len(), &mut array),
            "creating an array",
        )?;
        for (index, text) in texts.into_iter().enumerate() {
            let element = text.into_js(env, overlapping)?;
            check(
                sys::napi_set_element(env, array, index as u32, element),
                "filling an array",
            )?;
        }
    }
    Ok(array)
}

/// Rejects with an `Error` whose `code` is set, as napi-rs throws on sync paths.
unsafe fn reject(env: sys::napi_env, deferred: sys::napi_deferred, code: JsCode, message: &str) {
    let code = code.as_ref();
    // SAFETY: JS thread (caller's contract); a failed step leaves `error` null,
    // and rejecting with null still settles the promise.
    unsafe {
        let mut code_text = ptr::null_mut();
        let mut text = ptr::null_mut();
        let mut error = ptr::null_mut();
        sys::napi_create_string_utf8(env, code.as_ptr().cast(), code.len() as isize, &mut code_text);
        sys::napi_create_string_utf8(env, message.as_ptr().cast(), message.len() as isize, &mut text);
        sys::napi_create_error(env, code_text, text, &mut error);
        sys::napi_reject_deferred(env, deferred, error);
    }
}

#[cfg(test)]
mod tests {
    use super::JsText;

    #[test]
    fn text_takes_the_form_v8_stores() {
        assert!(matches!(JsText::from(String::from(r#"{"a":1}"#)), JsText::Ascii(ref text) if text == r#"{"a":1}"#));
        let text = r#"{"a":"café 東京 👍"}"#;
        assert!(
            matches!(JsText::from(String::from(text)), JsText::Utf16(ref units) if *units == text.encode_utf16().collect::<Vec<_>>())
        );
    }
}
