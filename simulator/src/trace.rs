//! The story of one run, recorded only when asked (a failing seed is replayed with tracing).

use std::cell::RefCell;

/// Lines of `t=12.400s bob PUT a3f1… 201 (answer lost)`.
pub struct Trace {
    enabled: bool,
    lines: RefCell<Vec<String>>,
}

impl Trace {
    /// A trace that records only if `enabled`.
    pub fn new(enabled: bool) -> Trace {
        Trace {
            enabled,
            lines: RefCell::new(Vec::new()),
        }
    }

    /// Records the line `line()` at virtual time `now_ms` (formatted only when enabled).
    pub fn log(&self, now_ms: u64, line: impl FnOnce() -> String) {
        if self.enabled {
            let text = line();
            self.lines.borrow_mut().push(format!(
                "t={}.{:03}s {text}",
                now_ms / 1000,
                now_ms % 1000
            ));
        }
    }

    /// Everything recorded.
    pub fn lines(&self) -> Vec<String> {
        self.lines.borrow().clone()
    }
}

/// The first 4 bytes of an address or key in hex, for the trace.
pub fn short(bytes: &[u8; 32]) -> String {
    let mut out: String = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
    out.push('…');
    out
}
