//! How the domain types are stored in SQL columns (only with the `sqlx` feature, which only
//! `airlock-store` enables): each is a TEXT column holding its canonical spelling, read back
//! through the type's own parser.
//!
//! The impls live here because Rust lets only the type's crate implement a foreign trait for it;
//! they are generic over the database and hold no SQL, so the domain stays free of storage. A
//! stored value that does not parse is a decode error naming the value; the store reports it as
//! corrupt metadata, naming the table and column.

use std::str::FromStr;

use sqlx::database::Database;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Decode, Encode, Type};

use crate::{Digest, PromotionState, RepoName, StageName, Tag};

/// Implements `Type`, `Decode` and `Encode` as TEXT for a type with `FromStr` and `Display`.
macro_rules! text_column {
    ($($ty:ty),+ $(,)?) => {$(
        impl<DB: Database> Type<DB> for $ty
        where
            String: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <String as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <String as Type<DB>>::compatible(ty)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $ty
        where
            String: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <String as Decode<'r, DB>>::decode(value)?;
                <$ty>::from_str(&text).map_err(|err| format!("{text:?}: {err}").into())
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $ty
        where
            String: Encode<'q, DB>,
        {
            fn encode_by_ref(
                &self,
                buf: &mut <DB as Database>::ArgumentBuffer,
            ) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, DB>>::encode(self.to_string(), buf)
            }
        }
    )+};
}

text_column!(Digest, RepoName, StageName, Tag, PromotionState);
