//! When a shard object may set its alarm.
//!
//! workerd refuses an alarm too far ahead (`setAlarm` threw for a time 1,000 years out and
//! took one 100 years out, measured; its clock counts nanoseconds in 64 bits, which end in
//! 2262), and a `PUT` sets the alarm to its bucket's drop time, `TTL` ahead: with a very
//! large `MAILBOX_TTL_SECONDS` every `PUT` stored its message and then answered `503`. So an
//! alarm is set at most [`MAX_ALARM_DELAY_MS`] ahead; one that runs before its work is due
//! finds nothing to do and sets itself again, at most as far ahead.
//!
//! Pure functions, compiled and unit-tested natively too.

/// Furthest ahead an alarm is set: 365 days (ms).
pub const MAX_ALARM_DELAY_MS: i64 = 365 * 86_400_000;

/// The time (ms since the Unix epoch) to set the alarm to, at `now`, for work due at `at`:
/// `at`, but no later than [`MAX_ALARM_DELAY_MS`] after `now`.
pub fn alarm_time(at: i64, now: i64) -> i64 {
    at.min(now.saturating_add(MAX_ALARM_DELAY_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alarm_is_set_at_most_a_year_ahead() {
        let now = 1_764_536_400_000;
        assert_eq!(alarm_time(now + 1_000, now), now + 1_000);
        assert_eq!(alarm_time(now - 5, now), now - 5, "past: runs at once");
        assert_eq!(
            alarm_time(now + MAX_ALARM_DELAY_MS, now),
            now + MAX_ALARM_DELAY_MS
        );
        assert_eq!(alarm_time(i64::MAX, now), now + MAX_ALARM_DELAY_MS);
        assert_eq!(alarm_time(i64::MAX, i64::MAX), i64::MAX, "saturates");
    }
}
