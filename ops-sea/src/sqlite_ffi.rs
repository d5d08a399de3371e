//! The one call into SQLite's C API that sqlx does not expose.

#![allow(unsafe_code)]

use std::ptr::NonNull;

use libsqlite3_sys::sqlite3;

/// Whether the connection is inside a transaction: `sqlite3_get_autocommit` returns zero then.
pub(crate) fn in_transaction(handle: NonNull<sqlite3>) -> bool {
    // SAFETY: the handle comes from sqlx's `LockedSqliteHandle`, held by the caller for the whole
    // call, so the connection is open and no other thread uses it. `sqlite3_get_autocommit` only
    // reads a flag of the connection.
    unsafe { libsqlite3_sys::sqlite3_get_autocommit(handle.as_ptr()) == 0 }
}
