//! `[STORE]` log lines, delivered to the user's logger on the JS thread.
//!
//! Lines come from tokio threads (the connection supervisor), so they go
//! through a threadsafe function that is weak (never keeps the process
//! alive) and non-blocking with a bounded queue (a stuck event loop drops
//! log lines rather than stalling Redis traffic).

use napi::bindgen_prelude::FnArgs;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;

pub const LOG_PREFIX: &str = "[STORE]";

/// The JS side: `(level, line) => void`, level `info` or `warn`.
pub type LogFunction =
    ThreadsafeFunction<FnArgs<(String, String)>, (), FnArgs<(String, String)>, Status, false, true, 256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
        }
    }
}

#[derive(Clone, Default)]
pub struct Logger {
    sink: Option<std::sync::Arc<LogFunction>>,
}

impl Logger {
    pub fn new(sink: Option<LogFunction>) -> Self {
        Logger {
            sink: sink.map(std::sync::Arc::new),
        }
    }

    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        if let Some(sink) = &self.sink {
            let line = format!("{LOG_PREFIX} {}", message.as_ref());
            // A full queue means JS is not keeping up: drop the line, never block.
            let _ = sink.call(
                FnArgs::from((level.as_str().to_owned(), line)),
                ThreadsafeFunctionCallMode::NonBlocking,
            );
        }
    }

    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }
}
