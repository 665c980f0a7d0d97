//! Invite links as people paste them (issue 16, item 8): links damaged in transit still parse
//! to the invite they came from, never to another one, and refusals say what is wrong.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use common::*;
use proptest::prelude::*;
use protocol::testing::SeededRng;
use protocol::*;

const SITE: &str = "https://hush.example/app/";

/// Invites without and with mailbox URLs of every length modulo 3 (so the fragment ends on
/// every base64 alignment).
fn invites(seed: u64) -> Vec<Invite> {
    let mut rng = SeededRng::new(seed);
    [
        None,
        Some("https://mb.example"),
        Some("https://mb.example/x"),
        Some("https://mb.example/xy"),
        Some("http://127.0.0.1:8787"),
    ]
    .into_iter()
    .map(|url| Invite::create(&mut rng, NOW, NOW + 600, url).unwrap().1)
    .collect()
}

fn link(invite: &Invite) -> String {
    format!("{SITE}#{}", invite.to_link_fragment().as_str())
}

/// A whole link percent-encoded (as `encodeURIComponent` does).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One way a link gets altered, as a function of the link.
type Damage = Box<dyn Fn(&str) -> String>;

/// What chat apps, mail clients and redirects do to a link.
fn damages() -> Vec<(&'static str, Damage)> {
    vec![
        ("as is", Box::new(|l| l.to_owned())),
        (
            "fragment only",
            Box::new(|l| l.split('#').nth(1).unwrap().to_owned()),
        ),
        ("full stop after", Box::new(|l| format!("{l}."))),
        ("other punctuation after", Box::new(|l| format!("{l}!?;:…"))),
        (
            "in a sentence with brackets",
            Box::new(|l| format!("(see {l}).")),
        ),
        ("angle brackets", Box::new(|l| format!("<{l}>"))),
        ("straight quotes", Box::new(|l| format!("\"{l}\","))),
        ("curly quotes", Box::new(|l| format!("“{l}”"))),
        ("single quotes", Box::new(|l| format!("'{l}'"))),
        ("markdown link", Box::new(|l| format!("[invite]({l})"))),
        ("spaces around", Box::new(|l| format!("  \t{l} \r\n"))),
        ("# as %23", Box::new(|l| l.replace('#', "%23"))),
        (
            "# as lowercase-free %23 twice",
            Box::new(|l| l.replace('#', "%2523")),
        ),
        (
            "whole link encoded by a redirect",
            Box::new(|l| format!("https://r.example/?u={}&x=1", percent_encode(l))),
        ),
        (
            "in a mail scanner's safe link",
            Box::new(|l| {
                format!(
                    "https://eur01.safelinks.example/?url={}&data=05%7C02%7C%7Cab%40cd%7C0&sdata=x%2By%3D&reserved=0",
                    percent_encode(l)
                )
            }),
        ),
        (
            "encoded twice",
            Box::new(|l| {
                format!(
                    "https://r.example/?u={}",
                    percent_encode(&percent_encode(l))
                )
            }),
        ),
        (
            "wrapped by a mail client with quoting",
            Box::new(|l| {
                let (head, frag) = l.split_once('#').unwrap();
                let (a, rest) = frag.split_at(20);
                let (b, c) = rest.split_at(50);
                format!("{head}#{a}\r\n> {b}=\r\n>  {c}")
            }),
        ),
        (
            "a space every 10 characters",
            Box::new(|l| {
                let (head, frag) = l.split_once('#').unwrap();
                let spaced: Vec<String> = frag
                    .as_bytes()
                    .chunks(10)
                    .map(|c| String::from_utf8(c.to_vec()).unwrap())
                    .collect();
                format!("{head}#{}", spaced.join(" "))
            }),
        ),
        (
            "invisible and non-breaking spaces inside",
            Box::new(|l| {
                let (head, frag) = l.split_once('#').unwrap();
                let (a, b) = frag.split_at(33);
                format!("{head}#{a}\u{200b}\u{a0}{b}\u{feff}")
            }),
        ),
        (
            "a message after it",
            Box::new(|l| format!("{l} see you at 5, ok?")),
        ),
        ("a line after it", Box::new(|l| format!("{l}\nThanks!"))),
        ("text before it", Box::new(|l| format!("Here it is: {l}"))),
    ]
}

#[test]
fn damaged_links_parse_to_the_invite_they_came_from() {
    for invite in invites(60) {
        for (kind, damage) in damages() {
            let text = damage(&link(&invite));
            let parsed = Invite::from_link_fragment(&text);
            // A URL invite followed by text, or broken inside its URL, may be refused as
            // ambiguous (a shorter URL or a longer one), never misread.
            let ambiguous_allowed = invite.mailbox_url().is_some()
                && matches!(
                    kind,
                    "a message after it"
                        | "a line after it"
                        | "a space every 10 characters"
                        | "in a mail scanner's safe link"
                );
            match parsed {
                Ok(parsed) => assert_eq!(parsed, invite, "{kind}: {text:?}"),
                Err(InviteError::Ambiguous) if ambiguous_allowed => {}
                Err(e) => panic!("{kind} ({:?}): {e}: {text:?}", invite.mailbox_url()),
            }
        }
    }
}

#[test]
fn a_url_less_invite_followed_by_text_is_never_ambiguous() {
    // After a URL-less invite the next decoded byte is below 0x10, a control character no URL
    // holds: no amount of text after it can be read as its mailbox URL.
    let invite = &invites(61)[0];
    for tail in [
        "a",
        "ab",
        "abc",
        "abcd",
        "see you",
        "x y z w",
        "ZZZZ ZZZZ ZZZZ",
        "_-_- 0000",
    ] {
        let text = format!("{} {tail}", link(invite));
        assert_eq!(
            Invite::from_link_fragment(&text).as_ref(),
            Ok(invite),
            "{text:?}"
        );
    }
}

#[test]
fn text_that_could_extend_a_url_invite_is_refused_not_guessed() {
    // "https://mb.example/x" makes 93 bytes, a whole number of base64 groups: four more
    // symbols are three more URL bytes ("abc" = "YWJj").
    let invite = &invites(62)[2];
    assert_eq!(invite.to_link_fragment().len() % 4, 0);
    let text = format!("{} YWJj", link(invite));
    assert_eq!(
        Invite::from_link_fragment(&text),
        Err(InviteError::Ambiguous)
    );
    // Glued on without a break, those symbols are indistinguishable from the invite's own.
    let glued = format!("{}YWJj", link(invite));
    let other = Invite::from_link_fragment(&glued).unwrap();
    assert_eq!(other.mailbox_url(), Some("https://mb.example/xabc"));
}

#[test]
fn refusals_say_what_is_wrong() {
    let invite = &invites(63)[0];
    let l = link(invite);
    let (head, frag) = l.split_once('#').unwrap();
    let cases: Vec<(String, InviteError)> = vec![
        (
            format!("{head}#{}", &frag[..60]),
            InviteError::Incomplete {
                found: 60,
                needed: INVITE_LINK_MIN_LEN,
            },
        ),
        (
            format!("{head}#{}{}", &frag[..50], &frag[51..]),
            InviteError::Incomplete {
                found: 97,
                needed: 98,
            },
        ),
        (format!("{head}#"), InviteError::NotAnInvite),
        (head.to_owned(), InviteError::NotAnInvite),
        (
            "hello there, here is my number".to_owned(),
            InviteError::NotAnInvite,
        ),
        ("Absolutely there".to_owned(), InviteError::NotAnInvite),
        (String::new(), InviteError::NotAnInvite),
        (format!("{l}x"), InviteError::ExtraCharacters),
        (format!("{l}and see you"), InviteError::ExtraCharacters),
        (format!("{l}0000"), InviteError::ExtraCharacters),
    ];
    for (text, expected) in cases {
        assert_eq!(Invite::from_link_fragment(&text), Err(expected), "{text:?}");
    }
    // A URL invite cut inside its last base64 group, or with its last symbol changed so that
    // its unused bits are set: damaged.
    let with_url = &invites(63)[1];
    let frag = with_url.to_link_fragment();
    let cut = &frag[..frag.len() - 1];
    let expected = if cut.len() % 4 == 1 {
        InviteError::InvalidBase64
    } else {
        // Cutting a whole symbol off can leave a valid, shorter URL: indistinguishable.
        return;
    };
    assert_eq!(Invite::from_link_fragment(cut), Err(expected));
    // A newer invite format, and an older one.
    let mut v3 = invite.to_bytes().to_vec();
    v3[0] = 3;
    assert_eq!(
        Invite::from_link_fragment(&base64url::encode(&v3)),
        Err(InviteError::UnsupportedVersion(3))
    );
    let mut v1 = invite.to_bytes().to_vec();
    v1[0] = 1;
    assert_eq!(
        Invite::from_link_fragment(&base64url::encode(&v1)),
        Err(InviteError::OlderVersion(1))
    );
}

#[test]
fn changed_unused_bits_are_damage() {
    let invite = &invites(64)[0];
    let frag = invite.to_link_fragment();
    // The last symbol carries 2 bits of data and 4 unused (zero) bits.
    let mut bytes = frag.as_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] = if bytes[last] == b'B' { b'C' } else { b'B' };
    let damaged = String::from_utf8(bytes).unwrap();
    assert_eq!(
        Invite::from_link_fragment(&damaged),
        Err(InviteError::InvalidBase64)
    );
}

/// Characters that are not base64url symbols, as damage inserts them.
fn non_symbol() -> impl Strategy<Value = char> {
    prop_oneof![
        Just(' '),
        Just('\n'),
        Just('\r'),
        Just('\t'),
        Just('.'),
        Just(','),
        Just('>'),
        Just('<'),
        Just('"'),
        Just('='),
        Just('\u{a0}'),
        Just('\u{200b}'),
        Just('”'),
        Just('…'),
        any::<char>().prop_filter("not a symbol", |c| {
            !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '#' || *c == '%')
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Only inserting non-symbols around and inside a link, and appending text after a
    /// non-symbol, yields the same invite, or for an invite with a mailbox URL (whose prefix
    /// or extension can be another valid URL) a refusal as ambiguous: never another invite.
    #[test]
    fn insertions_never_yield_another_invite(
        which in 0usize..5,
        inserts in prop::collection::vec((0usize..400, non_symbol()), 0..12),
        before in prop::collection::vec(non_symbol(), 0..3),
        after in prop::option::of((non_symbol(), "[ -~]{0,20}")),
    ) {
        let invite = &invites(70)[which];
        let frag = invite.to_link_fragment();
        let mut chars: Vec<char> = frag.chars().collect();
        for (at, c) in inserts {
            chars.insert(at % (chars.len() + 1), c);
        }
        let mut text: String = before.into_iter().collect();
        text.push_str(SITE);
        text.push('#');
        text.extend(chars);
        if let Some((sep, tail)) = after {
            text.push(sep);
            text.push_str(&tail.replace(['#', '%'], " "));
        }
        match Invite::from_link_fragment(&text) {
            Ok(parsed) => prop_assert_eq!(&parsed, invite, "{:?}", text),
            Err(InviteError::Ambiguous) => {
                prop_assert!(invite.mailbox_url().is_some(), "{:?}", text)
            }
            Err(e) => prop_assert!(false, "{}: {:?}", e, text),
        }
    }

    /// The fuzz harness's invariants (only stripping; a canonical fragment parses strictly) on
    /// links damaged by any characters at all, `%` and `#` and symbols included.
    #[test]
    fn link_harness_holds_on_arbitrary_damage(
        which in 0usize..5,
        inserts in prop::collection::vec((0usize..400, any::<char>()), 0..8),
        cut in prop::option::of(0usize..200),
    ) {
        let mut chars: Vec<char> = link(&invites(71)[which]).chars().collect();
        for (at, c) in inserts {
            chars.insert(at % (chars.len() + 1), c);
        }
        if let Some(cut) = cut {
            chars.truncate(chars.len().saturating_sub(cut));
        }
        let text: String = chars.into_iter().collect();
        protocol::fuzzing::invite(text.as_bytes());
    }
}

#[test]
fn a_hash_in_the_text_around_the_link_does_not_hide_the_invite() {
    let mut rng = protocol::testing::SeededRng::new(77);
    let (_, invite) = Invite::create(&mut rng, 0, 100, None).unwrap();
    let fragment = invite.to_link_fragment();
    for text in [
        format!("Join me: https://hush.example/#{} #hush", fragment.as_str()),
        format!("#hush https://hush.example/#{}", fragment.as_str()),
        format!("{} #tonight", fragment.as_str()),
        format!("#1 https://hush.example/%23{}. #2", fragment.as_str()),
    ] {
        assert_eq!(
            Invite::from_link_fragment(&text).as_ref(),
            Ok(&invite),
            "{text}"
        );
    }
    // A hashtag alone explains itself as "not an invite"; a damaged invite followed by a
    // hashtag is still explained as the damaged invite.
    assert_eq!(
        Invite::from_link_fragment("#hush").unwrap_err(),
        protocol::InviteError::NotAnInvite
    );
    let short = format!("https://hush.example/#{} #hush", &fragment.as_str()[..60]);
    assert_ne!(
        Invite::from_link_fragment(&short).unwrap_err(),
        protocol::InviteError::NotAnInvite
    );
}
