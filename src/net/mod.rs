//! Socket plumbing shared by both programs: the one read/write helper, the byte buffer, and
//! the open-file limit.

pub mod buffer;
pub mod io;
pub mod limit;
pub mod outbox;
