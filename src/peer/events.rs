//! `Events`: what a peer tells its user, printed on stderr and kept (the last few hundred
//! lines) so the shell, a test or an embedding program can read them back.
//!
//! Never blocks on anything but its own short lock.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

/// Most lines kept.
const KEEP: usize = 256;

/// A peer's messages to its user.
pub struct Events {
    label: String,
    lines: Mutex<VecDeque<String>>,
}

impl Events {
    /// Messages printed as `label: message`.
    pub fn new(label: &str) -> Events {
        Events {
            label: label.to_string(),
            lines: Mutex::default(),
        }
    }

    /// Say one line: print it on stderr and keep it.
    pub fn say(&self, line: &str) {
        eprintln!("{}: {line}", self.label);
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == KEEP {
            lines.pop_front();
        }
        lines.push_back(line.to_string());
    }

    /// The lines said so far (the last `KEEP`), oldest first.
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}
