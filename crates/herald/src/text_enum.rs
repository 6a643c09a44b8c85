//! [`text_enum!`]: a closed set of names (scopes, statuses, roles) as a Rust enum that is
//! stored, sent and received as its name: `TEXT` in both databases, a JSON string on the wire.
//!
//! Written here rather than derived: `#[derive(sqlx::Type)]` on an enum names a PostgreSQL
//! enum type (these columns are `TEXT`), and serde's derive would answer an unknown name with
//! its own message where the API has its own (inputs stay strings until the domain parses
//! them with [`parse`](#method.parse) and answers in the API's words). The OpenAPI description
//! shows these fields as plain strings (`#[schema(value_type = String)]`), as before.

/// `text_enum! { pub enum Name { Variant = "wire", ... } }`: the enum, `ALL`, `as_str`,
/// `parse`, `names` (for messages), `Display`, serde as the name, sqlx as `TEXT`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// Every name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),*];

            /// The name stored and sent.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value named `s`, if there is one.
            pub fn parse(s: &str) -> Option<$name> {
                match s {
                    $($text => Some($name::$variant),)*
                    _ => None,
                }
            }

            /// Every name, comma-separated, for error messages.
            pub fn names() -> String {
                $name::NAMES.join(", ")
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<$name, D::Error> {
                let s = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
                $name::parse(&s).ok_or_else(|| serde::de::Error::unknown_variant(&s, $name::NAMES))
            }
        }

        impl<DB: sqlx::Database> sqlx::Type<DB> for $name
        where
            String: sqlx::Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as sqlx::Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as sqlx::Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for $name
        where
            String: sqlx::Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<$name, sqlx::error::BoxDynError> {
                let s = <String as sqlx::Decode<'r, DB>>::decode(value)?;
                $name::parse(&s).ok_or_else(|| format!("unknown {} `{s}`", stringify!($name)).into())
            }
        }

        impl<'q, DB: sqlx::Database> sqlx::Encode<'q, DB> for $name
        where
            &'static str: sqlx::Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut DB::ArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&'static str as sqlx::Encode<'q, DB>>::encode_by_ref(&self.as_str(), buf)
            }
        }
    };
}
pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    text_enum! {
        enum Colour {
            Red = "red",
            DarkBlue = "dark:blue",
        }
    }

    #[test]
    fn names_round_trip_through_json() {
        assert_eq!(serde_json::to_string(&Colour::DarkBlue).expect("serializes"), r#""dark:blue""#);
        assert_eq!(serde_json::from_str::<Colour>(r#""red""#).expect("parses"), Colour::Red);
        assert!(serde_json::from_str::<Colour>(r#""green""#).is_err());
        assert_eq!(Colour::parse("dark:blue"), Some(Colour::DarkBlue));
        assert_eq!(Colour::names(), "red, dark:blue");
        assert_eq!(Colour::ALL.len(), 2);
    }
}
