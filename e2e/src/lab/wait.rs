//! Polling until something holds: the lab is a test harness, and daemons in
//! other processes offer nothing to subscribe to from here.

use std::fmt::Display;
use std::time::{Duration, Instant};

use super::Error;

const PERIOD: Duration = Duration::from_millis(100);

/// Calls `probe` every 100 ms until it returns `Ok`, or fails after `timeout`
/// with the last error `probe` gave, so a test failure says what was missing.
pub fn wait_until<T, E: Display>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, E>,
) -> Result<T, Error> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe() {
            Ok(v) => return Ok(v),
            Err(e) => e.to_string(),
        };
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                what: what.to_string(),
                timeout,
                detail: last,
            });
        }
        std::thread::sleep(PERIOD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_the_first_success_and_reports_the_last_failure() {
        let mut n = 0;
        let got = wait_until("n reaches 3", Duration::from_secs(5), || {
            n += 1;
            if n >= 3 {
                Ok(n)
            } else {
                Err(format!("n is {n}"))
            }
        });
        assert_eq!(got.unwrap(), 3);

        let err = wait_until("never", Duration::from_millis(250), || {
            Err::<(), _>("still not")
        })
        .unwrap_err();
        assert!(err.to_string().contains("still not"), "{err}");
    }
}
