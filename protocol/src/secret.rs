//! A macro for 32-byte secret newtypes: boxed (moves do not copy the bytes around the stack),
//! zeroized on drop, compared in constant time, and printed by `Debug` as `Name(..)` only.

macro_rules! secret_key {
    ($(#[$meta:meta])* $vis:vis struct $name:ident;) => {
        $(#[$meta])*
        #[derive(Clone, zeroize::Zeroize, zeroize::ZeroizeOnDrop)]
        $vis struct $name(Box<[u8; 32]>);

        #[allow(dead_code)]
        impl $name {
            /// Copies the bytes into a new boxed secret.
            pub(crate) fn from_bytes(bytes: &[u8; 32]) -> Self {
                Self(Box::new(*bytes))
            }

            /// The secret bytes.
            pub(crate) fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
            }
        }

        impl Eq for $name {}

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(concat!(stringify!($name), "(..)"))
            }
        }
    };
}

pub(crate) use secret_key;
