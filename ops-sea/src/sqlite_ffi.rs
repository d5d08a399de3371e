//! The calls into SQLite's C API that sqlx does not expose.

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

/// Clears `PRAGMA query_only`, which a read-only session sets, so a connection returned to the
/// pool by a session that never reached its end (cancelled, dropped) accepts writes again. It
/// runs inside SQLite, with no round trip; it is a no-op when the flag is not set.
pub(crate) fn clear_query_only(handle: NonNull<sqlite3>) -> bool {
    // SAFETY: as for `in_transaction`, the caller holds sqlx's lock on the open handle for the
    // whole call. `sqlite3_exec` runs one statement, given as a NUL-terminated C string that
    // outlives the call, with no callback and no error-message buffer.
    unsafe {
        libsqlite3_sys::sqlite3_exec(
            handle.as_ptr(),
            c"PRAGMA query_only = 0".as_ptr(),
            None,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ) == libsqlite3_sys::SQLITE_OK
    }
}
