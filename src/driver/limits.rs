//! The process's open-file limit, measured against what the media ranges
//! may need.
//!
//! Every relayed call holds four sockets (an RTP and an RTCP port on each
//! leg), so a switch that fills its media ranges needs one descriptor per
//! port, plus its listeners, connections, store and HTTP clients. Linux
//! starts processes with a soft limit (often 1,024) far below the hard one:
//! the switch raises the soft limit to the hard one at start, and says, at
//! start and in `check-config`, when even the hard limit is below what the
//! configured ranges could use. It does not refuse to start: a deployment
//! may never fill its ranges.
//!
//! It also owns the process's transparent-huge-page setting (see
//! [`disable_transparent_huge_pages`]).

use crate::config::Config;

/// Descriptors kept aside for everything but media: listeners, TCP and TLS
/// connections, the store, the HTTP API and webhook clients.
pub const RESERVED: u64 = 1024;

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`,
/// Linux 3.15). With them on (Debian's default is `madvise`, and allocators
/// ask for them), the first touch of each fresh 2 MiB of heap zeroes all of
/// it inside the thread that touched it: a stall of milliseconds on a
/// worker in the middle of a call setup. Measured on the 2-core machine at
/// 2,000 calls/s: p99 setup 12-16 ms with them, 4 ms without, for the same
/// CPU. The small pages cost a few more page faults, spread out.
pub fn disable_transparent_huge_pages() -> std::io::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one; returns the limit in
/// force afterwards.
pub fn raise_open_files() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(lim.rlim_cur)
}

/// The hard `RLIMIT_NOFILE`: the most the soft limit can be raised to.
pub fn open_files_hard_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes only the struct passed.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(lim.rlim_max)
}

/// Sockets the media ranges may hold at once: one per usable port (RTP on
/// an even port, RTCP on the next), over every profile.
pub fn media_descriptors(config: &Config) -> u64 {
    config
        .profiles
        .iter()
        .map(|np| {
            let m = &np.profile.media;
            let first = u64::from(m.rtp_port_min) + u64::from(m.rtp_port_min % 2);
            let last = u64::from(m.rtp_port_max);
            if last > first {
                // Whole (RTP, RTCP) pairs only.
                let pairs = (last - first).div_ceil(2);
                pairs * 2
            } else {
                0
            }
        })
        .sum()
}

/// A warning when `limit` open files cannot hold what the media ranges may
/// use, with the number of relayed calls the limit does allow.
pub fn descriptor_warning(config: &Config, limit: u64) -> Option<String> {
    let media = media_descriptors(config);
    if media + RESERVED <= limit {
        return None;
    }
    let calls = limit.saturating_sub(RESERVED) / 4;
    Some(format!(
        "the media ranges hold {media} ports ({} relayed calls at 4 sockets each) but this \
         process may open only {limit} files: about {calls} relayed calls before calls fail \
         with 503; narrow the ranges or raise the hard limit (ulimit -Hn, LimitNOFILE=)",
        media / 4
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_ranges_need_one_descriptor_per_port() {
        let c = crate::config::embedded_default();
        // internal 16384-24575 and external 24576-32767: 8,192 ports each.
        assert_eq!(media_descriptors(&c), 16_384);
        assert_eq!(descriptor_warning(&c, 20_000), None);
        let w = descriptor_warning(&c, 10_000).expect("10,000 files are too few");
        assert!(
            w.contains("16384 ports") && w.contains("about 2244 relayed calls"),
            "{w}"
        );
    }
}
