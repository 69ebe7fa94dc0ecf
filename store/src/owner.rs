//! Lease owner ids: how a process names itself in the rows it holds (key leases, webhook endpoint leases,
//! replay jobs, `distributor_status`). Unique per process start, readable by an operator.

/// `{role}-{host}-{pid}-{8 hex digits}`: the host name from `/etc/hostname` (`host` when unreadable), the
/// process id, and a random part so a restarted process with a reused pid is a new owner.
pub fn process_owner(role: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{role}-{}-{}-{}", hostname(), std::process::id(), &id[..8])
}

/// This machine's host name (`host` when `/etc/hostname` is unreadable or empty).
pub fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "host".into())
}

#[cfg(test)]
mod tests {
    #[test]
    fn owners_differ_per_call_and_name_the_role() {
        let (a, b) = (
            super::process_owner("indexer"),
            super::process_owner("indexer"),
        );
        assert!(a.starts_with("indexer-"), "{a}");
        assert_ne!(a, b);
        assert!(a.contains(&std::process::id().to_string()), "{a}");
    }
}
