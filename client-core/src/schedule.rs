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
/// live (the mailbox pushes what arrives, and each push starts a poll), in milliseconds:
/// 45–75 s, a safety net for what a push cannot bring (a watch set longer than a
/// subscription holds, a push lost with its connection). `draw` is a uniformly random `u32`.
pub fn safety_poll_delay_ms(draw: u32) -> u32 {
    45_000 + draw % 30_000
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
            assert!((45_000..75_000).contains(&safety_poll_delay_ms(draw)));
        }
    }
}
