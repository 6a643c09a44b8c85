//! Resource ids. Ground floor: imports nothing of the crate, so `events` and `store` both
//! use it without importing each other.

/// A new resource id: a UUIDv7, so ids sort by creation time.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
