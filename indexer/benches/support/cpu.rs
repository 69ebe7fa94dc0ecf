//! CPU time of this process and of a local Postgres server, from `/proc`, shared by the indexer benches.

use payouts_store::testdb::TestDb;

/// utime + stime (+ those of reaped children) of `/proc/{pid}/stat`, in seconds.
pub fn proc_cpu(pid: &str, children: bool) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After "pid (comm) ": state, ppid, … utime is the 12th, stime, cutime, cstime follow.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let mut ticks = field(11)? + field(12)?;
    if children {
        ticks += field(13)? + field(14)?;
    }
    Some(ticks / 100.0) // USER_HZ
}

pub fn postgres_cpu(postmaster: &str) -> Option<f64> {
    let mut total = proc_cpu(postmaster, true)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(postmaster) {
            total += proc_cpu(pid, false).unwrap_or(0.0);
        }
    }
    Some(total)
}

/// The postmaster of `db`'s server, when it runs on this machine and its data directory is readable.
pub async fn postmaster_pid(db: &TestDb) -> Option<String> {
    use diesel::sql_types::Text;
    use diesel_async::RunQueryDsl;
    let mut conn = db.conn().await;
    let dir: String = diesel::select(diesel::dsl::sql::<Text>(
        "current_setting('data_directory')",
    ))
    .get_result(&mut conn)
    .await
    .ok()?;
    let pid = std::fs::read_to_string(std::path::Path::new(&dir).join("postmaster.pid")).ok()?;
    Some(pid.lines().next()?.trim().to_string())
}
