//! Expiry buckets: which table a message lives in, which tables can still hold a live one,
//! and when a table may be dropped whole.
//!
//! A shard keeps its messages in one table per *bucket*, a half-open range of expiry times
//! `[end - width, end)`, named after its end (`messages_until_<end>`, ms since the Unix
//! epoch). Once `end - 1 <= now` every row in it has expired, so the shard's alarm drops the
//! table (`DROP TABLE`, which Cloudflare does not bill per row: `docs/EDGE-DEPLOY.md`)
//! instead of deleting its rows one by one. The table name carries its own end, so a change
//! of `MAILBOX_TTL_SECONDS` (hence of the width) leaves every existing table meaningful.
//!
//! The **legacy** table `messages`, the single table of the releases before buckets, has no
//! end: it counts as live until the alarm, which still purges its rows as those releases did,
//! finds it empty and drops it.
//!
//! Pure functions and data, compiled and unit-tested natively too.

use std::collections::BTreeSet;

/// Buckets per TTL: the width is `ceil(TTL / 7)`, so the messages of one TTL up to 7 days
/// span at most 8 buckets (plus one whose range has ended and waits for the alarm).
pub const BUCKETS_PER_TTL: i64 = 7;

/// Most buckets a TTL is cut into however long it is: the width is never under
/// `ceil(TTL / 31)`, so a shard has at most 32 live bucket tables (plus one awaiting its drop)
/// for any TTL. Without it a TTL above 7 days had one bucket per day: 366 for a year, and
/// every look-up probes every live table (workerd refused it past 100 tables).
pub const MAX_BUCKETS_PER_TTL: i64 = 31;

/// Narrowest bucket: 1 s (tests run with a 1–5 s TTL and still see buckets dropped).
pub const MIN_BUCKET_MS: i64 = 1_000;

/// Widest bucket `ceil(TTL / 7)` may give: 1 day (a TTL from 7 to 31 days therefore spans
/// more than 8 buckets: one per day of TTL, plus one; above 31 days the width is
/// `ceil(TTL / 31)`, [`MAX_BUCKETS_PER_TTL`]). The width bounds how long an expired message
/// stays on disk: at most one width plus [`DROP_SLACK_MS`] past its expiry.
pub const MAX_BUCKET_MS: i64 = 86_400_000;

/// How long after a bucket's end the alarm runs to drop it (tolerance for the clocks of the
/// `PUT` that set the alarm and of the alarm itself; one alarm also drops every other bucket
/// ended by then).
pub const DROP_SLACK_MS: i64 = 1_000;

/// Name of the single table of the releases before buckets.
pub const LEGACY_TABLE: &str = "messages";

/// Prefix of a bucket table's name, followed by its end in decimal.
pub const BUCKET_PREFIX: &str = "messages_until_";

/// `ceil(n / d)` for `n >= 0`, `d > 0`.
fn div_ceil(n: i64, d: i64) -> i64 {
    n / d + i64::from(n % d != 0)
}

/// The width of the buckets (ms) for a message lifetime of `ttl_ms`: `ceil(ttl_ms / 7)`
/// clamped to [`MIN_BUCKET_MS`]`..=`[`MAX_BUCKET_MS`], and at least `ceil(ttl_ms / 31)`
/// ([`MAX_BUCKETS_PER_TTL`]). Always at least 1 s and at most `max(ttl_ms, MIN_BUCKET_MS)`;
/// a negative `ttl_ms` counts as 0.
pub fn bucket_width_ms(ttl_ms: i64) -> i64 {
    let ttl = ttl_ms.max(0);
    div_ceil(ttl, BUCKETS_PER_TTL)
        .clamp(MIN_BUCKET_MS, MAX_BUCKET_MS)
        .max(div_ceil(ttl, MAX_BUCKETS_PER_TTL))
}

/// The end of the bucket holding a message that expires at `expires_at`, with buckets
/// `width_ms` wide aligned on the epoch: the smallest multiple of the width above
/// `expires_at`, so `end - width <= expires_at < end` (saturating at `i64::MAX`).
pub fn bucket_end(expires_at: i64, width_ms: i64) -> i64 {
    let width = width_ms.max(1);
    expires_at
        .div_euclid(width)
        .saturating_add(1)
        .saturating_mul(width)
}

/// Whether every message a bucket ending at `end` can hold has expired at `now`: its rows
/// all have `expires_at <= end - 1`, and a row is expired when `expires_at <= now`.
pub fn bucket_expired(end: i64, now: i64) -> bool {
    end <= now.saturating_add(1)
}

/// When the alarm should run to drop the bucket ending at `end`.
pub fn drop_at(end: i64) -> i64 {
    end.saturating_add(DROP_SLACK_MS)
}

/// One message table of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    /// The bucket of expiries `[end - width, end)`.
    Bucket {
        /// Exclusive upper bound of its rows' `expires_at` (ms since the epoch).
        end: i64,
    },
    /// The pre-bucket table `messages`, any expiry.
    Legacy,
}

impl Table {
    /// The table's name as an SQL identifier, quoted (a name built here never needs more
    /// than digits, letters, `_` and `-`, but quoting keeps that from mattering).
    pub fn sql_name(&self) -> String {
        match self {
            Table::Bucket { end } => format!("\"{BUCKET_PREFIX}{end}\""),
            Table::Legacy => format!("\"{LEGACY_TABLE}\""),
        }
    }

    /// The table named `name` (unquoted, as `sqlite_master` lists it), if it is one of ours.
    pub fn parse(name: &str) -> Option<Table> {
        if name == LEGACY_TABLE {
            return Some(Table::Legacy);
        }
        let digits = name.strip_prefix(BUCKET_PREFIX)?;
        // Only the canonical decimal form `sql_name` writes ("+1" or "01" are not ours).
        let end = digits.parse::<i64>().ok()?;
        (end.to_string() == digits).then_some(Table::Bucket { end })
    }
}

/// The message tables a shard has, as its Durable Object instance knows them (loaded from
/// `sqlite_master` once per instance, then kept in step by the statements that create and
/// drop tables, which only this instance runs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tables {
    buckets: BTreeSet<i64>,
    legacy: bool,
}

impl Tables {
    /// The tables among `names` (table names as `sqlite_master` lists them); other names are
    /// ignored.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut tables = Tables::default();
        for table in names.into_iter().filter_map(Table::parse) {
            tables.insert(table);
        }
        tables
    }

    /// Records that `table` exists.
    pub fn insert(&mut self, table: Table) {
        match table {
            Table::Bucket { end } => {
                self.buckets.insert(end);
            }
            Table::Legacy => self.legacy = true,
        }
    }

    /// Records that `table` is gone.
    pub fn remove(&mut self, table: Table) {
        match table {
            Table::Bucket { end } => {
                self.buckets.remove(&end);
            }
            Table::Legacy => self.legacy = false,
        }
    }

    /// Whether `table` exists.
    pub fn contains(&self, table: Table) -> bool {
        match table {
            Table::Bucket { end } => self.buckets.contains(&end),
            Table::Legacy => self.legacy,
        }
    }

    /// Whether the legacy table exists.
    pub fn has_legacy(&self) -> bool {
        self.legacy
    }

    /// Every table that may hold a live message at `now`: the buckets not expired, newest
    /// first (a message is most often read and deleted soon after it was stored, i.e. in the
    /// newest bucket), then the legacy table. A bucket left out holds expired rows only.
    pub fn live(&self, now: i64) -> Vec<Table> {
        let mut live: Vec<Table> = self
            .buckets
            .iter()
            .rev()
            .take_while(|&&end| !bucket_expired(end, now))
            .map(|&end| Table::Bucket { end })
            .collect();
        if self.legacy {
            live.push(Table::Legacy);
        }
        live
    }

    /// The buckets whose whole range has expired at `now`, oldest first: the alarm drops
    /// them.
    pub fn expired(&self, now: i64) -> Vec<Table> {
        self.buckets
            .iter()
            .take_while(|&&end| bucket_expired(end, now))
            .map(|&end| Table::Bucket { end })
            .collect()
    }

    /// When the alarm should next run to drop a bucket: [`drop_at`] of the earliest bucket,
    /// if any.
    pub fn next_drop(&self) -> Option<i64> {
        self.buckets.first().map(|&end| drop_at(end))
    }

    /// Number of bucket tables (the legacy table not counted).
    pub fn bucket_count(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000;
    const DAY: i64 = 86_400 * S;

    #[test]
    fn width_is_a_seventh_of_the_ttl_within_bounds() {
        assert_eq!(bucket_width_ms(7 * DAY), DAY);
        assert_eq!(bucket_width_ms(14 * DAY), DAY, "at most a day");
        assert_eq!(bucket_width_ms(DAY), 12_342_858, "ceil(86,400,000 / 7)");
        assert_eq!(bucket_width_ms(2 * S), S, "at least a second");
        assert_eq!(bucket_width_ms(S), S);
        assert_eq!(bucket_width_ms(70 * S), 10 * S);
        assert_eq!(bucket_width_ms(0), S);
        assert_eq!(bucket_width_ms(-5), S);
        assert_eq!(bucket_width_ms(31 * DAY), DAY, "a day up to 31 days");
        assert_eq!(bucket_width_ms(62 * DAY), 2 * DAY, "then a 31st of the TTL");
        assert_eq!(
            bucket_width_ms(365 * DAY),
            1_017_290_323,
            "ceil(365 days / 31)"
        );
        assert_eq!(bucket_width_ms(i64::MAX), i64::MAX / 31 + 1);
    }

    #[test]
    fn a_message_lies_in_its_bucket() {
        for width in [1, S, 12_342_858, DAY] {
            for expires_at in [
                0,
                1,
                width - 1,
                width,
                width + 1,
                1_764_536_400_123,
                -1,
                -width,
            ] {
                let end = bucket_end(expires_at, width);
                assert!(
                    end - width <= expires_at && expires_at < end,
                    "{expires_at} in {width}"
                );
                assert_eq!(end % width, 0, "aligned on the epoch");
            }
        }
        assert_eq!(bucket_end(i64::MAX, DAY), i64::MAX, "saturates");
        assert_eq!(bucket_end(5, 0), 6, "a zero width counts as 1 ms");
    }

    #[test]
    fn a_bucket_expires_when_its_last_possible_row_has() {
        // Rows of the bucket ending at 2000 expire at most at 1999.
        assert!(!bucket_expired(2_000, 1_998));
        assert!(bucket_expired(2_000, 1_999));
        assert!(bucket_expired(2_000, 5_000));
        assert!(bucket_expired(i64::MAX, i64::MAX));
        assert_eq!(drop_at(2_000), 2_000 + DROP_SLACK_MS);
    }

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        for table in [
            Table::Legacy,
            Table::Bucket {
                end: 1_764_633_600_000,
            },
            Table::Bucket { end: -3 },
        ] {
            let name = table.sql_name();
            let bare = name.trim_matches('"');
            assert_eq!(Table::parse(bare), Some(table));
        }
        assert_eq!(
            Table::Bucket { end: 42 }.sql_name(),
            "\"messages_until_42\""
        );
        for stranger in [
            "messages_until_",
            "messages_until_+1",
            "messages_until_01",
            "messages_until_1x",
            "messages2",
            "_cf_KV",
            "sqlite_sequence",
        ] {
            assert_eq!(Table::parse(stranger), None, "{stranger}");
        }
    }

    #[test]
    fn tables_list_live_newest_first_and_expired_oldest_first() {
        let tables = Tables::from_names([
            "messages_until_3000",
            "_cf_KV",
            "messages",
            "messages_until_1000",
            "messages_until_2000",
        ]);
        assert!(tables.has_legacy());
        assert_eq!(tables.bucket_count(), 3);
        assert_eq!(
            tables.live(1_500),
            vec![
                Table::Bucket { end: 3_000 },
                Table::Bucket { end: 2_000 },
                Table::Legacy
            ]
        );
        assert_eq!(tables.expired(1_500), vec![Table::Bucket { end: 1_000 }]);
        assert_eq!(
            tables.expired(2_999),
            vec![
                Table::Bucket { end: 1_000 },
                Table::Bucket { end: 2_000 },
                Table::Bucket { end: 3_000 }
            ]
        );
        assert_eq!(tables.live(2_999), vec![Table::Legacy]);
        assert_eq!(tables.next_drop(), Some(1_000 + DROP_SLACK_MS));
        let mut tables = tables;
        tables.remove(Table::Legacy);
        tables.remove(Table::Bucket { end: 1_000 });
        assert!(!tables.contains(Table::Legacy));
        assert!(!tables.contains(Table::Bucket { end: 1_000 }));
        assert!(tables.contains(Table::Bucket { end: 2_000 }));
        assert_eq!(tables.next_drop(), Some(2_000 + DROP_SLACK_MS));
        assert_eq!(Tables::default().next_drop(), None);
        assert!(Tables::default().live(0).is_empty());
    }

    /// Stores one message every `step` ms over three TTLs, runs the alarm when it is due, and
    /// returns the most tables ever live and the most ever present.
    fn simulate(ttl: i64, step: i64) -> (usize, usize) {
        let width = bucket_width_ms(ttl);
        let mut tables = Tables::default();
        let mut alarm: Option<i64> = None;
        let (mut most_live, mut most_present) = (0, 0);
        let mut now = 1_764_536_400_000;
        let until = now + 3 * ttl;
        while now < until {
            if alarm.is_some_and(|at| at <= now) {
                for table in tables.expired(now) {
                    tables.remove(table);
                }
                alarm = tables.next_drop();
            }
            let end = bucket_end(now + ttl, width);
            tables.insert(Table::Bucket { end });
            assert!(!bucket_expired(end, now), "a new message's bucket is live");
            alarm = Some(alarm.map_or(drop_at(end), |at| at.min(drop_at(end))));
            most_live = most_live.max(tables.live(now).len());
            most_present = most_present.max(tables.bucket_count());
            now += step;
        }
        (most_live, most_present)
    }

    #[test]
    fn at_most_eight_live_buckets_and_one_more_awaiting_its_drop() {
        for (ttl, step) in [
            (7 * DAY, 600 * S),
            (DAY, 60 * S),
            (2 * S, 50),
            (5 * S, 100),
            (70 * S, 500),
        ] {
            let (live, present) = simulate(ttl, step);
            assert!(live <= 8, "ttl {ttl}: {live} live");
            assert!(present <= 9, "ttl {ttl}: {present} present");
        }
        // A TTL from 7 to 31 days: one bucket per day of TTL, plus one.
        let (live, _) = simulate(30 * DAY, 3_600 * S);
        assert!(live <= 31, "{live}");
    }

    #[test]
    fn at_most_thirty_two_live_buckets_for_any_ttl() {
        // One look-up probes every live table: their number must not grow with the TTL.
        for (ttl, step) in [
            (31 * DAY, 3_600 * S),
            (32 * DAY, 3_600 * S),
            (365 * DAY, 6 * 3_600 * S),
            (3_650 * DAY, 60 * 3_600 * S),
        ] {
            let (live, present) = simulate(ttl, step);
            assert!(live <= 32, "ttl {ttl}: {live} live");
            assert!(present <= 33, "ttl {ttl}: {present} present");
        }
    }
}
