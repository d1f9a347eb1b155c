//! Waiting for a request's send time with a kernel timer.
//!
//! tokio's timer wheel has 1 ms granularity: a request due 0.1 ms after a
//! tick is sent at the next one, 0.9 ms late, and since latency is measured
//! from the intended send time, that lateness is added to every figure the
//! run reports (`send_lag_us` shows it). A `timerfd` armed for the exact
//! wait and registered with the runtime's reactor wakes the generator
//! within microseconds instead, while the thread stays free to read
//! answers. Where a timerfd cannot be made (not Linux, no file descriptors
//! left), the pacer falls back to tokio's timer.
//!
//! With a wake quantum ([`Pacer::with_quantum`], `--pace-quantum-us`) the
//! pacer wakes at most once per quantum: a request due sooner after the
//! last wake-up waits for the quantum's end, and everything due by then is
//! sent in one go. Each request is at most one quantum later than its
//! time (its latency still counts from that time), for fewer wake-ups at
//! high rates.

use std::cell::Cell;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;

/// One generator thread's pacer. Must be made inside its tokio runtime.
pub struct Pacer {
    timer: Option<AsyncFd<OwnedFd>>,
    quantum: Duration,
    last_wake: Cell<Option<Instant>>,
}

impl Pacer {
    /// A pacer on a fresh timerfd, or on tokio's timer if none can be made,
    /// waking for every request on time.
    pub fn new() -> Pacer {
        Pacer::with_quantum(Duration::ZERO)
    }

    /// Like [`Pacer::new`], waking at most once per `quantum`.
    pub fn with_quantum(quantum: Duration) -> Pacer {
        let timer = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )
        .ok()
        .and_then(|fd| register(fd).ok());
        Pacer {
            timer,
            quantum,
            last_wake: Cell::new(None),
        }
    }

    /// Whether this pacer has its kernel timer (else tokio's, 1 ms).
    pub fn precise(&self) -> bool {
        self.timer.is_some()
    }

    /// Returns at `due` (at once if it has passed), or at the end of the
    /// quantum begun by the last wake-up if that is later. `Instant` is
    /// CLOCK_MONOTONIC on Linux, the timer's clock.
    pub async fn sleep_until(&self, due: Instant) {
        let now = Instant::now();
        if due <= now {
            return; // due: goes with this wake-up's burst
        }
        let due = match self.last_wake.get() {
            Some(woke) if !self.quantum.is_zero() => due.max(woke + self.quantum),
            _ => due,
        };
        self.wait(due, due - now).await;
        self.last_wake.set(Some(Instant::now()));
    }

    async fn wait(&self, due: Instant, wait: Duration) {
        let Some(timer) = &self.timer else {
            return tokio::time::sleep_until(due.into()).await;
        };
        if arm(timer, wait).is_err() {
            return tokio::time::sleep_until(due.into()).await;
        }
        loop {
            let Ok(mut ready) = timer.readable().await else {
                return tokio::time::sleep_until(due.into()).await;
            };
            let mut expirations = [0u8; 8];
            match ready.try_io(|fd| {
                rustix::io::read(fd.get_ref(), &mut expirations[..]).map_err(std::io::Error::from)
            }) {
                // Expired (or the read failed: do not spin on it).
                Ok(Ok(_)) => return,
                Ok(Err(_)) => return tokio::time::sleep_until(due.into()).await,
                // Not yet: readiness was stale; wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

impl Default for Pacer {
    fn default() -> Pacer {
        Pacer::new()
    }
}

/// Registers the timer with the runtime's reactor.
// The crate's one `unsafe`: tokio's `AsyncFd::register` asks its caller to
// promise that the descriptor stays open and the same for the AsyncFd's
// life, which an `OwnedFd` moved into it guarantees (nothing else can close
// it, and its `as_raw_fd` never changes).
#[allow(unsafe_code)]
fn register(fd: OwnedFd) -> std::io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: `fd` is owned by the AsyncFd from here on (see above).
    unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from)
}

/// Arms `timer` once, `wait` from now (re-arming also clears an earlier
/// expiration count).
fn arm(timer: &AsyncFd<OwnedFd>, wait: Duration) -> rustix::io::Result<()> {
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let value = Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    timerfd_settime(
        timer.get_ref(),
        TimerfdTimerFlags::empty(),
        &Itimerspec {
            it_interval: zero,
            it_value: value,
        },
    )
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_wakes_at_the_due_time_not_before() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let pacer = Pacer::new();
            assert!(pacer.precise(), "a timerfd on Linux");
            for wait_us in [50u64, 300, 2_500] {
                let due = Instant::now() + Duration::from_micros(wait_us);
                pacer.sleep_until(due).await;
                assert!(Instant::now() >= due, "woke before {wait_us} µs");
            }
            // A time already passed returns at once.
            pacer.sleep_until(Instant::now()).await;
        });
    }

    #[test]
    fn with_a_quantum_it_wakes_at_most_once_per_quantum() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let quantum = Duration::from_millis(5);
            let pacer = Pacer::with_quantum(quantum);
            let start = Instant::now();
            pacer.sleep_until(start + Duration::from_micros(100)).await;
            let woke = Instant::now();
            // Due 1 ms after that wake-up: waits for the quantum's end.
            pacer.sleep_until(woke + Duration::from_millis(1)).await;
            assert!(Instant::now() >= woke + quantum);
            // Already due: at once, whatever the quantum.
            let before = Instant::now();
            pacer.sleep_until(start).await;
            assert!(before.elapsed() < quantum);
        });
    }
}
