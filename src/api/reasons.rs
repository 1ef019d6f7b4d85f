//! The declaration of a documented reason enum: each variant has a stable CamelCase reason
//! and a doc comment that says what it means and what to change, from which
//! `docs/reference.md` is generated, so that a reason can never be missing there.

/// Declares `$name` with its variants, their reasons and doc comments, `ALL`, `reason()` and
/// `description()`.
macro_rules! documented_reasons {
    (
        $(#[doc = $name_doc:literal])+
        $name:ident;
        $( $(#[doc = $doc:literal])+ $variant:ident = $reason:literal; )*
    ) => {
        $(#[doc = $name_doc])+
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[doc = $doc])+ $variant, )*
        }

        impl $name {
            /// Every reason, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),*];

            /// The stable CamelCase reason.
            pub fn reason(self) -> &'static str {
                match self {
                    $( $name::$variant => $reason, )*
                }
            }

            /// What the reason means and what to change, from the variant's doc comment.
            pub fn description(self) -> &'static str {
                match self {
                    $( $name::$variant => concat!($($doc),+), )*
                }
            }
        }
    };
}
