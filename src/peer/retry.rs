//! Announcements the tracker refused (`ERR conflict`: another holder had the name first), to
//! be tried again with backoff. A squatter that announced bogus content and left frees the
//! name when its registration ends; without a retry the honest holder would stay unlisted
//! until it restarted.
//!
//! Owns only the schedule (which name, when next, how long the wait grows). Never a socket,
//! never the store: the link asks what is due and reports how each try went.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The first retry of a refused announcement, after this long.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The wait doubles on each refusal up to this.
pub const MAX_RETRY: Duration = Duration::from_secs(60);

/// Refused names and when each is tried next.
#[derive(Debug, Default)]
pub struct Retries {
    due: BTreeMap<String, (Instant, Duration)>,
}

impl Retries {
    /// `name` was refused at `now`: try it again after `FIRST_RETRY`, or after twice the last
    /// wait (at most `MAX_RETRY`) if it was refused before.
    pub fn refused(&mut self, name: &str, now: Instant) {
        let wait = match self.due.get(name) {
            Some((_, last)) => (*last * 2).min(MAX_RETRY),
            None => FIRST_RETRY,
        };
        self.due.insert(name.to_string(), (now + wait, wait));
    }

    /// `name` was accepted, or is no longer held: stop trying it.
    pub fn done(&mut self, name: &str) {
        self.due.remove(name);
    }

    /// The names whose retry time has come.
    pub fn due(&self, now: Instant) -> Vec<String> {
        self.due
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// How long the link may wait for work: `idle`, or less if a retry comes due sooner.
    pub fn wait(&self, now: Instant, idle: Duration) -> Duration {
        self.due
            .values()
            .map(|(at, _)| at.saturating_duration_since(now))
            .fold(idle, Duration::min)
    }

    /// How many names wait for a retry.
    pub fn len(&self) -> usize {
        self.due.len()
    }

    /// No name waits for a retry.
    pub fn is_empty(&self) -> bool {
        self.due.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_name_is_retried_with_doubling_backoff_until_done() {
        let t0 = Instant::now();
        let idle = Duration::from_secs(10);
        let mut r = Retries::default();
        assert_eq!(r.wait(t0, idle), idle);
        r.refused("a", t0);
        assert!(r.due(t0).is_empty());
        assert_eq!(r.wait(t0, idle), FIRST_RETRY);
        assert_eq!(r.due(t0 + FIRST_RETRY), vec!["a".to_string()]);
        let t1 = t0 + FIRST_RETRY;
        r.refused("a", t1);
        assert!(r.due(t1 + FIRST_RETRY).is_empty());
        assert_eq!(r.due(t1 + FIRST_RETRY * 2), vec!["a".to_string()]);
        for _ in 0..20 {
            r.refused("a", t1);
        }
        assert_eq!(r.wait(t1, Duration::from_secs(3600)), MAX_RETRY);
        r.done("a");
        assert!(r.is_empty());
        assert_eq!(r.wait(t1, idle), idle);
    }
}
