//! The process's limit on open descriptors: both programs hold one per connection.

/// Raises the process's soft limit on open files towards `wanted`, never past the hard limit,
/// and returns the soft limit then in force (`None` when it cannot be read or is unlimited).
/// A shell's soft limit (often 1024) is a default for interactive programs; a server that
/// holds thousands of connections raises it, as HAProxy and Go's runtime do, and only the
/// hard limit, which the operator set, bounds it.
pub fn raise_open_files(wanted: u64) -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let target = wanted.min(lim.rlim_max);
    if lim.rlim_cur != libc::RLIM_INFINITY && target > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct it is given, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = target;
        }
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_nothing_reads_the_limit_and_leaves_it() {
        let now = raise_open_files(0);
        assert!(now.is_some_and(|n| n > 0));
        assert_eq!(raise_open_files(0), now);
    }
}
