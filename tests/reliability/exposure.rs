//! How exposed a local cluster is while a run uses it.

use std::path::Path;

use crate::harness::*;

/// The cluster under `tmp` listens on 127.0.0.1 only (no other address, no
/// IPv6), its Unix socket sits in a private dir, and no connection is trusted
/// without a password.
pub fn assert_private_cluster(tmp: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let pid = postmaster_pid(tmp).expect("the postmaster");
    let dir = cluster_dir(tmp).expect("the cluster dir");
    let listening = listening_sockets(pid);
    assert!(!listening.is_empty(), "the postmaster listens on nothing?");
    for (addr, _) in &listening {
        assert!(
            addr.starts_with("127.0.0.1:"),
            "the postmaster listens on {addr}: {listening:?}"
        );
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let port = listening[0].0.rsplit(':').next().unwrap();
    let socket = dir.join(format!(".s.PGSQL.{port}"));
    assert!(socket.exists(), "no socket at {}", socket.display());
    assert_eq!(mode(&socket) & 0o077, 0, "{}", socket.display());
    let hba = std::fs::read_to_string(dir.join("data/pg_hba.conf")).unwrap();
    let rules: Vec<&str> = hba
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(!rules.is_empty());
    for rule in rules {
        assert!(
            rule.ends_with("scram-sha-256"),
            "pg_hba.conf allows more than passwords: {rule}"
        );
    }
}

/// TCP sockets in LISTEN state owned by `pid`, as ("a.b.c.d:port" or
/// "[v6]:port", inode).
pub fn listening_sockets(pid: u32) -> Vec<(String, u64)> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let s = l.to_str()?.to_string();
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let inode: u64 = f[9].parse().unwrap_or(0);
            if !inodes.contains(&inode) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let addr = if v6 {
                format!("[{addr}]")
            } else {
                let n = u32::from_str_radix(addr, 16).unwrap();
                std::net::Ipv4Addr::from(n.swap_bytes()).to_string()
            };
            out.push((format!("{addr}:{port}"), inode));
        }
    }
    out
}
