//! Replays the committed fuzz corpus through the same entry points the fuzz targets call, so
//! every seed and every past crash is checked by a plain `cargo test`, without the fuzzer.

use std::fs;
use std::path::{Path, PathBuf};

use rr_proxy::fuzzing;

/// The corpus directory of one fuzz target.
fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs every file of `target`'s corpus through `entry`; the directory must exist and hold at
/// least one file, so a lost corpus fails the test instead of passing it vacuously.
fn replay(target: &str, entry: fn(&[u8])) {
    let dir = corpus_dir(target);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut files = 0;
    for entry_res in entries {
        let path = entry_res.expect("read corpus directory").path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        // A panic names the file, so a failing seed can be replayed by hand.
        eprintln!("replaying {}", path.display());
        entry(&data);
        files += 1;
    }
    assert!(files > 0, "{} holds no corpus files", dir.display());
}

#[test]
fn request_head_corpus() {
    replay("request_head", fuzzing::request_head);
}

#[test]
fn response_head_corpus() {
    replay("response_head", fuzzing::response_head);
}

#[test]
fn chunked_corpus() {
    replay("chunked", fuzzing::chunked);
}

#[test]
fn split_invariance_corpus() {
    replay("split_invariance", fuzzing::split_invariance);
}

/// The whole proxy over loopback, one connection per file (see `fuzzing::session`).
#[test]
fn proxy_session_corpus() {
    replay("proxy_session", fuzzing::session::proxy_session);
}
