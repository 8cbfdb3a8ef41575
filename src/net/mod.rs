//! Socket plumbing shared by both programs: the one read/write helper and the byte buffer.

pub mod buffer;
pub mod io;
pub mod outbox;
