//! What the accept loop does when `accept()` fails: how long it pauses and when it logs.
//!
//! Running out of file descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM) makes
//! `accept()` fail at once, every time, for as long as the pending connection waits in the
//! backlog: retrying immediately is a busy loop that burns a core and floods the log while the
//! worker's own connections need those descriptors. So such an error pauses the loop briefly and
//! is logged at most once per `LOG_EVERY`, with the number of errors since the last line.
//! Errors that concern only the connection being accepted (the client reset it before it was
//! accepted) are not the listener's problem: the loop goes on at once.

use std::io::ErrorKind;
use std::time::{Duration, Instant};

/// Pause after an error of the listener itself: short enough that the endpoint answers again soon
/// after descriptors are freed, long enough that the loop costs nothing while they are not.
pub const PAUSE: Duration = Duration::from_millis(100);

/// At most one log line per this interval while errors continue.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// What to do about one failed `accept()`.
#[derive(Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Sleep this long before the next `accept()`.
    pub pause: Duration,
    /// Log this error now, with this many errors suppressed since the previous line.
    pub log: Option<u64>,
}

/// Counts the errors and decides when to log; one per accept loop.
#[derive(Debug, Default)]
pub struct AcceptErrors {
    last_logged: Option<Instant>,
    suppressed: u64,
}

impl AcceptErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn failed(&mut self, kind: ErrorKind, now: Instant) -> Verdict {
        if per_connection(kind) {
            return Verdict {
                pause: Duration::ZERO,
                log: None,
            };
        }
        let due = self
            .last_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= LOG_EVERY);
        let log = if due {
            self.last_logged = Some(now);
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            None
        };
        Verdict { pause: PAUSE, log }
    }
}

/// Errors about the one connection being accepted, after which the listener works as before.
fn per_connection(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_errors_pause_and_are_logged_once_a_minute_with_a_count() {
        let t0 = Instant::now();
        let mut errors = AcceptErrors::new();
        let mut logged = Vec::new();
        // An EMFILE every 100 ms for 2.5 minutes, as the accept loop would see it.
        for i in 0..1500u64 {
            let now = t0 + Duration::from_millis(100 * i);
            let v = errors.failed(ErrorKind::Other, now);
            assert_eq!(v.pause, PAUSE, "error {i} must pause the loop");
            if let Some(suppressed) = v.log {
                logged.push((now - t0, suppressed));
            }
        }
        eprintln!("injected: 1500 listener errors 100 ms apart; logged at {logged:?}");
        assert_eq!(
            logged,
            vec![
                (Duration::ZERO, 0),
                (Duration::from_secs(60), 599),
                (Duration::from_secs(120), 599),
            ],
            "one line at once, then one a minute counting the suppressed errors"
        );
    }

    #[test]
    fn a_connection_reset_before_accept_neither_pauses_nor_logs() {
        let mut errors = AcceptErrors::new();
        for kind in [
            ErrorKind::ConnectionAborted,
            ErrorKind::ConnectionReset,
            ErrorKind::ConnectionRefused,
        ] {
            let v = errors.failed(kind, Instant::now());
            eprintln!("injected: {kind:?}; verdict {v:?}");
            assert_eq!(
                v,
                Verdict {
                    pause: Duration::ZERO,
                    log: None
                }
            );
        }
        // And they do not use up the next listener error's log line.
        assert_eq!(errors.failed(ErrorKind::Other, Instant::now()).log, Some(0));
    }
}
