//! The process's open-files limit (`RLIMIT_NOFILE`): raising the soft limit to the hard one
//! at a server's start, so its real connection ceiling is the one it was configured with, or
//! saying what the ceiling really is when the system allows less.
//!
//! Owns the two C library calls (`getrlimit`, `setrlimit`, from the libc std already links),
//! one small `unsafe` each. Linux only; elsewhere it reports that nothing was changed. Never
//! touches a socket or another resource limit.

use std::io;

/// Descriptors a server keeps for itself (listening socket, standard streams, journal, files
/// being served...), not available to connections.
pub const RESERVED_FDS: u64 = 32;

/// The open-files limit before and after `raise_open_files`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFiles {
    pub before: u64,
    pub now: u64,
    pub hard: u64,
}

impl OpenFiles {
    /// About how many connections the process can hold at once.
    pub fn connection_ceiling(&self) -> u64 {
        self.now.saturating_sub(RESERVED_FDS)
    }
}

#[cfg(target_os = "linux")]
mod sys {
    /// `struct rlimit` on 64-bit Linux: two `rlim_t` (unsigned 64-bit).
    #[repr(C)]
    pub struct RLimit {
        pub cur: u64,
        pub max: u64,
    }

    /// `RLIMIT_NOFILE` on Linux (x86-64 and arm64 alike).
    pub const RLIMIT_NOFILE: i32 = 7;

    unsafe extern "C" {
        pub fn getrlimit(resource: i32, rlim: *mut RLimit) -> i32;
        pub fn setrlimit(resource: i32, rlim: *const RLimit) -> i32;
    }
}

/// Raise the soft open-files limit to the hard limit (never lowers it).
#[cfg(target_os = "linux")]
pub fn raise_open_files() -> io::Result<OpenFiles> {
    let mut lim = sys::RLimit { cur: 0, max: 0 };
    // SAFETY: `lim` is a live, writable `struct rlimit` of the layout the C library expects
    // (two 64-bit rlim_t on 64-bit Linux); getrlimit writes only into it.
    if unsafe { sys::getrlimit(sys::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = lim.cur;
    if lim.cur < lim.max {
        let raised = sys::RLimit {
            cur: lim.max,
            max: lim.max,
        };
        // SAFETY: `raised` is a valid `struct rlimit` that outlives the call; setrlimit only
        // reads it. Raising the soft limit up to the hard one needs no privilege.
        if unsafe { sys::setrlimit(sys::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.cur = lim.max;
    }
    Ok(OpenFiles {
        before,
        now: lim.cur,
        hard: lim.max,
    })
}

/// Not Linux: nothing is changed.
#[cfg(not(target_os = "linux"))]
pub fn raise_open_files() -> io::Result<OpenFiles> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "raising the open-files limit is only done on Linux",
    ))
}

/// The line a server prints at start: its real connection ceiling against `max_conns`.
pub fn ceiling_line(who: &str, max_conns: usize, got: &io::Result<OpenFiles>) -> String {
    match got {
        Ok(o) if o.connection_ceiling() >= max_conns as u64 => format!(
            "{who}: open-files limit {} (was {}): room for --max-conns {max_conns}",
            o.now, o.before
        ),
        Ok(o) => format!(
            "{who}: open-files limit {} (hard limit {}): at most about {} connections at once, fewer than --max-conns {max_conns}; raise the hard limit (ulimit -Hn) for more",
            o.now,
            o.hard,
            o.connection_ceiling()
        ),
        Err(e) => format!("{who}: open-files limit unknown ({e}); --max-conns is {max_conns}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(target_os = "linux")]
    fn the_soft_limit_ends_at_the_hard_limit_and_the_line_says_the_ceiling() {
        let got = raise_open_files().unwrap();
        assert_eq!(got.now, got.hard);
        assert!(got.now >= got.before);
        let proc = std::fs::read_to_string("/proc/self/limits").unwrap();
        let line = proc
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap();
        let soft: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(soft[3], got.now.to_string().as_str());
        let small = OpenFiles {
            before: 1024,
            now: 1024,
            hard: 1024,
        };
        assert_eq!(
            ceiling_line("tracker", 10_000, &Ok(small)),
            "tracker: open-files limit 1024 (hard limit 1024): at most about 992 connections at once, fewer than --max-conns 10000; raise the hard limit (ulimit -Hn) for more"
        );
    }
}
