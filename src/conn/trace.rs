//! `--trace`: where trace lines go (off, stderr or stdout), their clock, and their format.
//!
//! It owns the printing of one trace line; it must never print a secret (every line goes
//! through `protocol::redacted`) and never fail the connection it traces (a closed stdout or a
//! full disk loses trace lines, nothing else).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use crate::protocol;

/// Where `--trace` lines go: off, or stderr with a label naming this process's role.
///
/// A trace line is
///
/// ```text
/// trace [   12.345 ms] tracker < 127.0.0.1:9000  UPLOAD test1.txt 27 ...
/// ```
///
/// the milliseconds since tracing started (the CLI turns it on first thing, so: since the
/// process started), the label, the direction (`<` received, `>` sent, `-` an event of the
/// connection: connected, registered, forgotten, closed), who is at the other end (its
/// address, or once it has said who it is, its id), and the line. Lines are printed through
/// `protocol::redacted`, so a field marked secret never reaches the trace.
#[derive(Clone, Debug, Default)]
pub struct Trace(Option<Arc<str>>);

static TRACE_TO_STDOUT: AtomicBool = AtomicBool::new(false);
/// When tracing started: the zero of every trace line's clock.
static TRACE_START: OnceLock<Instant> = OnceLock::new();

impl Trace {
    pub fn off() -> Trace {
        Trace(None)
    }
    /// Trace to stderr, each line labelled `label` (`tracker`, `peer 10000`). Starts the trace
    /// clock if it is not running yet.
    pub fn on(label: &str) -> Trace {
        TRACE_START.get_or_init(Instant::now);
        Trace(Some(label.into()))
    }
    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
    /// Send trace lines to stdout instead of stderr (the simulation narrates on stdout).
    pub fn to_stdout(yes: bool) {
        TRACE_TO_STDOUT.store(yes, Ordering::Relaxed);
    }
    /// One trace line of a connection that is not a `Conn` (the BitTorrent wire):
    /// `arrow` is `<`, `>` or `-`, `who` the other side.
    pub fn note(&self, who: &str, arrow: &str, text: &str) {
        self.line(who, arrow, text.as_bytes());
    }
    pub(super) fn line(&self, who: &str, arrow: &str, text: &[u8]) {
        if let Some(label) = &self.0 {
            let text = String::from_utf8_lossy(text);
            let text = protocol::redacted(text.trim_end_matches('\r'));
            let ms = TRACE_START
                .get_or_init(Instant::now)
                .elapsed()
                .as_secs_f64()
                * 1000.0;
            // A trace must never take the process down: a closed stdout (`| head`) or a full
            // disk loses trace lines, nothing else.
            if TRACE_TO_STDOUT.load(Ordering::Relaxed) {
                let _ = writeln!(
                    io::stdout().lock(),
                    "  [{ms:9.3} ms] {label} {arrow} {who}  {text}"
                );
            } else {
                let _ = writeln!(
                    io::stderr().lock(),
                    "trace [{ms:9.3} ms] {label} {arrow} {who}  {text}"
                );
            }
        }
    }
}
