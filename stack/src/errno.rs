//! Error enums that map to the errno names Linux programs know.

/// Defines a small error enum whose variants each map to an errno name (`EADDRINUSE`, ...),
/// with `errno()`, `Display` and `Error`.
macro_rules! errno_enum {

    ($(#[$m:meta])* $name:ident { $($(#[doc = $doc:literal])* $variant:ident => $errno:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name {
            $($(#[doc = $doc])* $variant,)*
        }

        impl $name {
            /// The errno name a Linux program would see.
            pub const fn errno(self) -> &'static str {
                match self {
                    $($name::$variant => $errno,)*
                }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.errno())
            }
        }

        impl core::error::Error for $name {}
    };
}

pub(crate) use errno_enum;
