//! Two signals the command line cares about, through the C library std already links.
//!
//! - Ctrl-C (`SIGINT`) and `SIGTERM` during `get`: instead of dying mid-line, the process sets
//!   a flag; `get` sees it, ends its progress line, says what was kept for a resume, and exits.
//! - `SIGTTIN` for `peer --shell`: a process in the background that reads its terminal is
//!   stopped by the kernel (`Stopped (tty input)`), and a stopped peer serves nobody. Ignored,
//!   the read fails with `EIO` instead, and the shell says so and leaves the peer serving.
//!
//! The only thing a handler does is store to an atomic: anything more is not
//! async-signal-safe. Everything here is Linux-only (the signal numbers are Linux's); on other
//! systems the functions do nothing and the defaults stay.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C or `SIGTERM` arrived since `catch_interrupt`.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

#[cfg(target_os = "linux")]
mod imp {
    use super::{INTERRUPTED, Ordering};
    use std::ffi::c_int;

    const SIGINT: c_int = 2;
    const SIGTERM: c_int = 15;
    const SIGTTIN: c_int = 21;
    /// `SIG_IGN` is the handler value 1 in Linux's C libraries.
    const SIG_IGN: usize = 1;
    /// `SIG_ERR` is the handler value -1.
    const SIG_ERR: usize = usize::MAX;

    unsafe extern "C" {
        /// `sighandler_t signal(int signum, sighandler_t handler)`; glibc and musl give it BSD
        /// semantics (the handler stays installed, interrupted reads restart).
        fn signal(signum: c_int, handler: usize) -> usize;
    }

    extern "C" fn on_interrupt(_: c_int) {
        INTERRUPTED.store(true, Ordering::Relaxed);
    }

    fn install(signum: c_int, handler: usize) -> bool {
        // SAFETY: `signal` is the C library's, declared with its Linux prototype (an int and a
        // pointer-sized handler). The handlers passed are `SIG_IGN` or `on_interrupt`, an
        // `extern "C" fn(c_int)` that only stores to a static atomic, which is
        // async-signal-safe.
        unsafe { signal(signum, handler) != SIG_ERR }
    }

    pub fn catch_interrupt() -> bool {
        let handler = on_interrupt as extern "C" fn(c_int) as usize;
        install(SIGINT, handler) && install(SIGTERM, handler)
    }

    pub fn ignore_tty_input_stop() -> bool {
        install(SIGTTIN, SIG_IGN)
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub fn catch_interrupt() -> bool {
        false
    }
    pub fn ignore_tty_input_stop() -> bool {
        false
    }
}

/// From now on Ctrl-C and `SIGTERM` set `interrupted()` instead of killing the process.
/// Returns false where that is not supported (the defaults stay).
pub fn catch_interrupt() -> bool {
    imp::catch_interrupt()
}

/// Reading the terminal from the background fails (`EIO`) instead of stopping the process.
pub fn ignore_tty_input_stop() -> bool {
    imp::ignore_tty_input_stop()
}
