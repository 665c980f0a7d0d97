//! Hush protocol core.
//!
//! A two-party Double Ratchet (Signal, revision 1, with header encryption) in which every
//! message is deposited at a fresh 32-byte mailbox address that only the two participants can
//! compute. This crate is pure: it performs no I/O and reads no clock; randomness and time are
//! passed in by the caller. See `docs/PROTOCOL.md` for the specification.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod address;

pub use address::{Address, WriteKey};
