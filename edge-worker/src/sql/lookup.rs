//! The look-up statements: which live row, if any, an address has across a shard's tables.
//!
//! One statement probes up to [`MAX_PROBES_PER_STATEMENT`] tables with one scalar subquery
//! each, `SELECT (SELECT {column} FROM t_1 WHERE address = ?1 AND expires_at > ?2), (…t_2…), …`,
//! answering one row whose `i`-th column is the live row's value in the `i`-th table, or
//! `NULL`. Scalar subqueries rather than `UNION ALL`: workerd limits a compound `SELECT` to 5
//! terms ("too many terms in compound SELECT" with 6; measured). At most
//! [`MAX_PROBES_PER_STATEMENT`] per statement: workerd also limits a result row to 100 columns
//! (`SQLITE_LIMIT_COLUMN`; with 101 tables every look-up failed, measured), and a shard can
//! hold more tables than that after changes of the TTL. More tables take more statements, run
//! one after the other in the same synchronous event (`super`'s "Atomicity"), so the look-up
//! and the insert that follows it stay atomic however many there are.
//!
//! Pure functions, compiled and unit-tested natively too.

use super::buckets::Table;

/// Most tables one look-up statement probes (one result column each), well below workerd's
/// 100 columns per result row. A shard has at most `MAX_BUCKETS_PER_TTL + 2` tables for one
/// TTL ([`super::buckets`]), so one statement serves it unless the TTL was changed recently.
pub const MAX_PROBES_PER_STATEMENT: usize = 48;
const _: () = assert!(MAX_PROBES_PER_STATEMENT > 0 && MAX_PROBES_PER_STATEMENT < 100);

/// What a look-up reads of the live row it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// What a `PUT` is refused for, in the row it reads anyway: the integer `1` for a live
    /// message; for a spent address (its body emptied by a `DELETE`) a blob, the deleted
    /// message's digest, or empty if none was recorded ([`super::spent`]).
    Refusal,
    /// `body`: a blob, empty for a spent address.
    Body,
}

impl Column {
    /// The column's SQL expression (never `NULL` for a row that exists).
    fn sql(self) -> &'static str {
        match self {
            Column::Refusal => "CASE WHEN length(body) > 0 THEN 1 ELSE coalesce(digest, X'') END",
            Column::Body => "body",
        }
    }
}

/// The statements looking up one address in `tables`, in order: each covers the next
/// [`MAX_PROBES_PER_STATEMENT`] (or fewer) tables and takes the bindings `?1` = the address
/// (32-byte blob), `?2` = now (ms since the Unix epoch). Returns each statement with the
/// tables it covers, in column order; none for no tables.
pub fn live_lookups(tables: &[Table], column: Column) -> Vec<(String, &[Table])> {
    tables
        .chunks(MAX_PROBES_PER_STATEMENT)
        .map(|chunk| {
            let probes: Vec<String> = chunk
                .iter()
                .map(|t| {
                    format!(
                        "(SELECT {} FROM {} WHERE address = ?1 AND expires_at > ?2)",
                        column.sql(),
                        t.sql_name()
                    )
                })
                .collect();
            (format!("SELECT {}", probes.join(", ")), chunk)
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    fn buckets(n: i64) -> Vec<Table> {
        (1..=n).map(|i| Table::Bucket { end: i * 1_000 }).collect()
    }

    #[test]
    fn one_statement_probes_every_table_of_one_ttl() {
        let mut tables = buckets(33);
        tables.push(Table::Legacy);
        let lookups = live_lookups(&tables, Column::Refusal);
        assert_eq!(lookups.len(), 1, "one statement");
        let (sql, covered) = lookups.first().expect("one statement");
        assert_eq!(covered, &tables.as_slice());
        let refusal =
            "(SELECT CASE WHEN length(body) > 0 THEN 1 ELSE coalesce(digest, X'') END FROM ";
        assert_eq!(sql.matches(refusal).count(), 34);
        assert!(sql.starts_with(&format!(
            "SELECT {refusal}\"messages_until_1000\" WHERE address = ?1 AND expires_at > ?2), "
        )));
        assert!(sql.ends_with(&format!(
            "{refusal}\"messages\" WHERE address = ?1 AND expires_at > ?2)"
        )));
    }

    #[test]
    fn more_tables_than_a_statement_may_probe_take_more_statements_in_order() {
        // A year of 1-day buckets, as a shard could hold before the width was bounded.
        let tables = buckets(366);
        let lookups = live_lookups(&tables, Column::Body);
        assert_eq!(lookups.len(), 366_usize.div_ceil(MAX_PROBES_PER_STATEMENT));
        let mut covered = Vec::new();
        for (sql, chunk) in &lookups {
            assert!(!chunk.is_empty() && chunk.len() <= MAX_PROBES_PER_STATEMENT);
            // One result column per table probed: below workerd's 100.
            assert_eq!(sql.matches("(SELECT body FROM ").count(), chunk.len());
            for table in *chunk {
                assert!(sql.contains(&table.sql_name()));
            }
            covered.extend_from_slice(chunk);
        }
        assert_eq!(covered, tables, "every table once, in the order given");
    }

    #[test]
    fn no_tables_no_statement() {
        assert!(live_lookups(&[], Column::Body).is_empty());
    }
}
