//! Billable operations, counted per request and per WebSocket event, so that the cost per
//! user can be measured in workerd (`MAILBOX_LOG_OPS`, `docs/EDGE-DEPLOY.md`, "What it
//! costs"). Counts only: never an address, a body, a key or a watch set.
//!
//! Pure data, compiled and unit-tested natively too.

/// Header in which a shard object reports the operations it spent on one internal request,
/// as [`Ops::header`] writes it.
pub const OPS_HEADER: &str = "x-mailbox-ops";

/// Counts of what Cloudflare bills (Durable Objects pricing): requests to Durable Objects,
/// SQLite rows read and written (as the SQL API's cursors report them), alarms set, and
/// WebSocket messages received (billed as requests at 20:1) and sent (not billed).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ops {
    /// Requests sent to Durable Objects (each billed as one request).
    pub do_requests: u64,
    /// SQLite rows read (`SqlStorageCursor.rowsRead`).
    pub rows_read: u64,
    /// SQLite rows written (`SqlStorageCursor.rowsWritten`).
    pub rows_written: u64,
    /// Alarms (re)scheduled (`storage.setAlarm`).
    pub alarms_set: u64,
    /// WebSocket messages received from clients.
    pub ws_in: u64,
    /// WebSocket messages sent to clients.
    pub ws_out: u64,
    /// Pushes lost: a `201` outside the hub's shard whose `notify` to the hub failed (not
    /// billed; counted so that losses show in the log).
    pub pushes_lost: u64,
}

impl Ops {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Ops) {
        self.do_requests += other.do_requests;
        self.rows_read += other.rows_read;
        self.rows_written += other.rows_written;
        self.alarms_set += other.alarms_set;
        self.ws_in += other.ws_in;
        self.ws_out += other.ws_out;
        self.pushes_lost += other.pushes_lost;
    }

    /// The counts with their names, in field order.
    fn fields(&self) -> [(&'static str, u64); 7] {
        [
            ("do_requests", self.do_requests),
            ("rows_read", self.rows_read),
            ("rows_written", self.rows_written),
            ("alarms_set", self.alarms_set),
            ("ws_in", self.ws_in),
            ("ws_out", self.ws_out),
            ("pushes_lost", self.pushes_lost),
        ]
    }

    /// The counts as seven decimal numbers separated by `,`, in field order (the value of
    /// [`OPS_HEADER`]).
    pub fn header(&self) -> String {
        let numbers: Vec<String> = self.fields().iter().map(|(_, n)| n.to_string()).collect();
        numbers.join(",")
    }

    /// Parses [`Ops::header`]'s format; `None` for anything else.
    pub fn parse_header(text: &str) -> Option<Ops> {
        let numbers: Vec<u64> = text
            .split(',')
            .map(|n| n.trim().parse::<u64>().ok())
            .collect::<Option<_>>()?;
        let [a, b, c, d, e, f, g] = <[u64; 7]>::try_from(numbers).ok()?;
        Some(Ops {
            do_requests: a,
            rows_read: b,
            rows_written: c,
            alarms_set: d,
            ws_in: e,
            ws_out: f,
            pushes_lost: g,
        })
    }

    /// The log line (`mailbox: ops event=… do_requests=… rows_read=… rows_written=…
    /// alarms_set=… ws_in=… ws_out=… pushes_lost=…`); `event` names what was served (`request`,
    /// `ws_open`, `ws_message`, `ws_close`, `alarm`).
    pub fn log_line(&self, event: &str) -> String {
        let mut line = format!("mailbox: ops event={event}");
        for (name, n) in self.fields() {
            line.push_str(&format!(" {name}={n}"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_garbage() {
        let ops = Ops {
            do_requests: 1,
            rows_read: 48,
            rows_written: 2,
            alarms_set: 1,
            ws_in: 3,
            ws_out: 4,
            pushes_lost: 1,
        };
        assert_eq!(Ops::parse_header(&ops.header()), Some(ops));
        assert_eq!(Ops::parse_header("1,2,3"), None);
        assert_eq!(Ops::parse_header("1,2,3,4,5,6,7,8"), None);
        assert_eq!(Ops::parse_header("1,2,x,4,5,6,7"), None);
        assert_eq!(Ops::parse_header(""), None);
    }

    #[test]
    fn counts_add_up() {
        let mut total = Ops::default();
        total.add(Ops {
            do_requests: 1,
            rows_read: 5,
            ..Ops::default()
        });
        total.add(Ops {
            do_requests: 1,
            rows_written: 2,
            ..Ops::default()
        });
        assert_eq!(
            total.log_line("request"),
            "mailbox: ops event=request do_requests=2 rows_read=5 rows_written=2 alarms_set=0 ws_in=0 ws_out=0 pushes_lost=0"
        );
    }
}
