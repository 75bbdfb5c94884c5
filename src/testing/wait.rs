//! Waiting for a condition with a timeout, for the integration tests (`tests/it`): the services
//! and the worker are separate processes, so tests poll for what they expect instead of sleeping
//! for a guessed time.
//!
//! [`poll`] keeps the last failed observation so a caller can say what it saw when time ran out;
//! [`wait_for`] is the common case that only needs a name for the panic message.

use std::future::Future;
use std::time::{Duration, Instant};

/// Calls `check` until it returns `Ok`, sleeping `interval` between calls, and returns that value;
/// once `timeout` has passed, returns the last `Err` instead. `check` runs at least once.
pub async fn poll<T, E, F, Fut>(timeout: Duration, interval: Duration, mut check: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = check().await;
        if last.is_ok() || Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll(timeout, Duration::from_millis(100), || {
        let next = f();
        async move { next.await.ok_or(()) }
    })
    .await
    .unwrap_or_else(|()| panic!("timed out after {timeout:?} waiting for {what}"))
}
