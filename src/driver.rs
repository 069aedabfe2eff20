//! Calls run together in one tokio task, not one task each.
//!
//! A call sends its command through redis-rs's multiplexed connection, whose
//! own task writes what has been queued when it next runs. A call spawned as
//! a task of its own woke that task into tokio's LIFO slot, so it ran right
//! after the call and wrote that one command: one `writev` per call (130k a
//! second at 68k `get`s a second), and Redis read them about two at a time.
//! Polled together in one task, a batch of new calls queues all its commands
//! before the connection's task runs, which then writes them at once.
//! `bench/profile.js`, `get` 4 KB at concurrency 64: 70k → 84k ops/s.
//!
//! With more than one worker thread (`REDIS_STORE_WORKER_THREADS`), calls
//! are spawned one task each, so that they can run in parallel.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;

use futures_util::future::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::task::AtomicWaker;

type Call = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Calls handed over by the JS thread that the driver has not taken yet.
static INCOMING: Mutex<Vec<Call>> = Mutex::new(Vec::new());
static DRIVER_WAKER: AtomicWaker = AtomicWaker::new();
/// Whether the driver task is running (it ends only with the runtime).
static DRIVER_RUNNING: AtomicBool = AtomicBool::new(false);
/// Whether the runtime has several worker threads: then calls are spawned.
static PARALLEL: AtomicBool = AtomicBool::new(false);

/// Set once, when the runtime is built.
pub fn set_worker_threads(count: usize) {
    PARALLEL.store(count > 1, Ordering::Relaxed);
}

/// Runs `call` on tokio: in the driver task (started on first use, and again
/// after a runtime restart), or in a task of its own with several workers.
pub fn run(call: impl Future<Output = ()> + Send + 'static) {
    if PARALLEL.load(Ordering::Relaxed) {
        napi::bindgen_prelude::spawn(call);
        return;
    }
    incoming().push(Box::pin(call));
    if DRIVER_RUNNING.swap(true, Ordering::AcqRel) {
        DRIVER_WAKER.wake();
    } else {
        napi::bindgen_prelude::spawn(drive());
    }
}

fn incoming() -> std::sync::MutexGuard<'static, Vec<Call>> {
    INCOMING.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn drive() {
    let _running = Running;
    let mut calls = FuturesUnordered::new();
    std::future::poll_fn(move |cx| {
        DRIVER_WAKER.register(cx.waker());
        let taken = std::mem::take(&mut *incoming());
        // A call that panics ends alone, as a task of its own would.
        calls.extend(taken.into_iter().map(|call| AssertUnwindSafe(call).catch_unwind()));
        // Until every call waits for something (or none is left).
        while let Poll::Ready(Some(_)) = calls.poll_next_unpin(cx) {}
        Poll::<()>::Pending
    })
    .await;
}

/// Marks the driver stopped when its task is dropped (the runtime shut
/// down), so that the next call starts another; calls it had not taken
/// belong to the environment that went away.
struct Running;

impl Drop for Running {
    fn drop(&mut self) {
        let abandoned = std::mem::take(&mut *incoming());
        drop(abandoned);
        DRIVER_RUNNING.store(false, Ordering::Release);
    }
}
