//! Per-process request rate limits, as Coder's: keyed by user (or client address when
//! anonymous) and endpoint, counted over a sliding one-minute window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(60);

/// Counts requests per key in fixed windows and estimates the sliding-window count from the
/// current and previous window, as httprate does.
pub struct RateLimiter {
    limit: i64,
    windows: Mutex<HashMap<String, Counter>>,
}

#[derive(Clone, Copy)]
struct Counter {
    start: Instant,
    current: i64,
    previous: i64,
}

pub struct Decision {
    pub allowed: bool,
    pub limit: i64,
    pub remaining: i64,
    pub reset_secs: u64,
}

impl RateLimiter {
    /// `limit <= 0` disables the limiter.
    pub fn new(limit: i64) -> Self {
        RateLimiter {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.limit > 0
    }

    pub fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        let mut map = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, c| now.duration_since(c.start) < 2 * WINDOW);
        }
        let c = map.entry(key.to_string()).or_insert(Counter {
            start: now,
            current: 0,
            previous: 0,
        });
        let elapsed = now.duration_since(c.start);
        if elapsed >= 2 * WINDOW {
            *c = Counter {
                start: now,
                current: 0,
                previous: 0,
            };
        } else if elapsed >= WINDOW {
            *c = Counter {
                start: c.start + WINDOW,
                current: 0,
                previous: c.current,
            };
        }
        let into_window = now.duration_since(c.start).as_secs_f64() / WINDOW.as_secs_f64();
        let estimate = (c.previous as f64 * (1.0 - into_window)).floor() as i64 + c.current;
        let allowed = estimate < self.limit;
        if allowed {
            c.current += 1;
        }
        let reset_secs = (WINDOW.saturating_sub(now.duration_since(c.start))).as_secs();
        Decision {
            allowed,
            limit: self.limit,
            remaining: (self.limit - estimate - i64::from(allowed)).max(0),
            reset_secs,
        }
    }
}

/// The limits of one deployment.
pub struct RateLimits {
    pub api: RateLimiter,
    pub login: RateLimiter,
    pub files: RateLimiter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_up_to_the_limit() {
        let l = RateLimiter::new(3);
        assert!((0..3).all(|_| l.check("k").allowed));
        let d = l.check("k");
        assert!(!d.allowed);
        assert_eq!(d.remaining, 0);
        assert!(l.check("other").allowed);
    }
}
