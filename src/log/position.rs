//! Positions in the replicated log: [`Term`], [`Index`] and the pair of them, [`Cursor`].

use core::fmt;

use serde::{Deserialize, Serialize};

macro_rules! position_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl $name {
            /// The zero value: "none yet".
            pub const ZERO: Self = Self(0);

            /// The zero value.
            pub const fn zero() -> Self {
                Self(0)
            }

            /// One.
            pub const fn one() -> Self {
                Self(1)
            }

            /// True for the zero value.
            pub const fn is_zero(&self) -> bool {
                self.0 == 0
            }

            /// The value before this one, saturating at zero.
            #[must_use]
            pub const fn prev(&self) -> Self {
                Self(self.0.saturating_sub(1))
            }

            /// The value after this one.
            #[must_use]
            pub const fn next(&self) -> Self {
                Self(self.0.saturating_add(1))
            }
        }

        impl From<u64> for $name {
            fn from(value: u64) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u64 {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

position_newtype!(
    /// A Raft term: increases with every election. Term 0 precedes all elections.
    Term
);

position_newtype!(
    /// A position in the log. The first entry has index 1; index 0 means "before the first entry".
    Index
);

/// A log position: the term of an entry and its index.
///
/// Cursors order by term first, then index, which is exactly Raft's "at least as
/// up-to-date" comparison of two logs' last entries (§5.4.1).
#[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cursor(pub Term, pub Index);

impl Cursor {
    /// The position before the first entry.
    pub const ZERO: Self = Self(Term::ZERO, Index::ZERO);

    /// A cursor at `index`, written in `term`.
    pub const fn new(term: Term, index: Index) -> Self {
        Self(term, index)
    }

    /// The term of the entry at this position.
    pub const fn term(&self) -> Term {
        self.0
    }

    /// The index of the entry at this position.
    pub const fn index(&self) -> Index {
        self.1
    }
}

impl fmt::Debug for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cursor(t:{},i:{})", self.0, self.1)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.1, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_order_by_term_before_index() {
        let long_old_log = Cursor::new(Term(1), Index(10));
        let short_new_log = Cursor::new(Term(2), Index(3));
        assert!(short_new_log > long_old_log);
        assert!(Cursor::new(Term(2), Index(4)) > short_new_log);
    }
}
