//! When to poll next.

/// A randomised delay before the next poll of a conversation, in milliseconds: quick while
/// the conversation is open and in front, slower in the background. `draw` is a uniformly
/// random `u32`; the jitter keeps polls from forming a fingerprint.
///
/// | page | conversation | delay |
/// |---|---|---|
/// | in front | open | 1.5–3.5 s |
/// | in front | not open | 5–10 s |
/// | hidden | any | 20–40 s |
pub fn poll_delay_ms(foreground: bool, open: bool, draw: u32) -> u32 {
    let (low, high) = match (foreground, open) {
        (true, true) => (1_500, 3_500),
        (true, false) => (5_000, 10_000),
        (false, _) => (20_000, 40_000),
    };
    low + (draw % (high - low))
}

/// A randomised delay before the next poll of a conversation whose subscription WebSocket is
/// live, in milliseconds: 60–90 min. The mailbox pushes what arrives and answers each
/// refreshed watch set ([`watch_refresh_delay_ms`]) with a snapshot, and the app reads both
/// (`Client::poll_pushed`), so this poll is only a safety net for what no watch set holds (a
/// poll set longer than [`crate::receive::MAX_WATCH_BATCHES`] batches, after 16 or more
/// skipped keys). It was 10–15 min while pushes only started polls: about 80 of a subscribed
/// user's 595 requests a day (`tests/bench/edge-cost.mjs`). `draw` is a uniformly random
/// `u32`.
pub fn safety_poll_delay_ms(draw: u32) -> u32 {
    3_600_000 + draw % 1_800_000
}

/// A randomised delay before a live subscription sends its watch set again, in milliseconds:
/// 2–4 min. The snapshot that answers shows the connection still works (a socket can die
/// without a close event) and brings anything a lost push missed; one WebSocket message
/// costs the edge a twentieth of a request where a safety poll cost a whole one (measured:
/// 45–75 s safety polls were about 60 % of a subscribed user's requests,
/// `tests/bench/edge-cost.mjs`). `draw` is a uniformly random `u32`.
pub fn watch_refresh_delay_ms(draw: u32) -> u32 {
    120_000 + draw % 120_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_in_their_bands() {
        for draw in [0, 1, 1_999, 2_000, u32::MAX] {
            assert!((1_500..3_500).contains(&poll_delay_ms(true, true, draw)));
            assert!((5_000..10_000).contains(&poll_delay_ms(true, false, draw)));
            assert!((20_000..40_000).contains(&poll_delay_ms(false, true, draw)));
            assert!((3_600_000..5_400_000).contains(&safety_poll_delay_ms(draw)));
            assert!((120_000..240_000).contains(&watch_refresh_delay_ms(draw)));
        }
    }
}
