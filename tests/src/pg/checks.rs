//! The consistency checks of a database started on a copied data directory. Each check returns
//! what it saw (`Ok`) or what is wrong (`Err`), so a test can report every failed check at once.
//!
//! 1. recovery: the server finishes crash recovery and accepts connections, and its log has no
//!    PANIC;
//! 2. amcheck: `pg_amcheck --heapallindexed` on every database reports nothing (heap pages and
//!    tuples sane, btree indexes sane and holding every heap tuple);
//! 3. pgbench: the row counts match the scale, no account appears twice, and
//!    sum(abalance) = sum(bbalance) = sum(tbalance) = sum(delta) of the history, which every
//!    pgbench transaction keeps true;
//! 4. ledger: the table holds exactly the ids 1..M, and M lies in the range the test expects
//!    (what was acknowledged before the freeze, at most one more).

use std::time::Duration;

use super::PgServer;

/// One check's name and outcome.
pub struct Check {
    pub name: &'static str,
    pub outcome: Result<String, String>,
}

/// What a consistent copy must show.
pub struct Expect {
    /// pgbench's scale factor (`pgbench -i -s`).
    pub scale: u64,
    /// The ledger holds at least these ids.
    pub ledger_at_least: u64,
    /// And at most these, when known.
    pub ledger_at_most: Option<u64>,
}

/// Waits for the server and runs every check; stops at the first one when recovery failed.
pub fn run_all(server: &mut PgServer, expect: &Expect, ready_timeout: Duration) -> Vec<Check> {
    let mut checks = vec![Check {
        name: "recovery",
        outcome: recovery(server, ready_timeout),
    }];
    if checks[0].outcome.is_ok() {
        checks.push(Check {
            name: "pg_amcheck",
            outcome: amcheck(server),
        });
        checks.push(Check {
            name: "pgbench balances",
            outcome: pgbench(server, expect.scale),
        });
        checks.push(Check {
            name: "ledger",
            outcome: ledger(server, expect.ledger_at_least, expect.ledger_at_most),
        });
    }
    // A PANIC during the checks (a torn page found while reading) counts too.
    if let Some(l) = panic_line(&server.log()) {
        checks.push(Check {
            name: "server log",
            outcome: Err(format!("PANIC in the log: {l}")),
        });
    }
    checks
}

fn panic_line(log: &str) -> Option<String> {
    log.lines()
        .find(|l| l.contains("PANIC:"))
        .map(str::to_string)
}

/// The server accepts connections within `timeout` and logged no PANIC.
pub fn recovery(server: &mut PgServer, timeout: Duration) -> Result<String, String> {
    server.wait_ready(timeout)?;
    let log = server.log();
    if let Some(l) = panic_line(&log) {
        return Err(format!("PANIC in the log: {l}"));
    }
    let crash = log.contains("automatic recovery in progress");
    let redo = log
        .lines()
        .find(|l| l.contains("redo done at"))
        .map(|l| l.split_once("LOG:").map_or(l, |p| p.1).trim().to_string());
    Ok(match (crash, redo) {
        (true, Some(r)) => format!("crash recovery: {r}"),
        (true, None) => "crash recovery, nothing to redo".into(),
        (false, _) => "started without crash recovery".into(),
    })
}

/// `pg_amcheck --all --install-missing --heapallindexed` finds nothing.
pub fn amcheck(server: &PgServer) -> Result<String, String> {
    let out = server
        .client("pg_amcheck")
        .args(["--all", "--install-missing", "--heapallindexed"])
        .env("PGOPTIONS", "-c statement_timeout=300s")
        .output()
        .map_err(|e| format!("cannot run pg_amcheck: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() && stdout.trim().is_empty() {
        Ok("nothing found".into())
    } else {
        let lines: Vec<&str> = stdout.lines().chain(stderr.lines()).collect();
        Err(format!(
            "pg_amcheck exited with {} and {} line(s), the first ones:\n{}",
            out.status,
            lines.len(),
            lines[..lines.len().min(12)].join("\n")
        ))
    }
}

/// pgbench's tables: row counts of scale `scale`, unique accounts, equal balance sums.
pub fn pgbench(server: &PgServer, scale: u64) -> Result<String, String> {
    let row = server.psql(
        "select (select count(*) from pgbench_branches), \
                (select count(*) from pgbench_tellers), \
                (select count(*) from pgbench_accounts), \
                (select count(distinct aid) from pgbench_accounts), \
                (select coalesce(sum(bbalance), 0) from pgbench_branches), \
                (select coalesce(sum(tbalance), 0) from pgbench_tellers), \
                (select coalesce(sum(abalance), 0) from pgbench_accounts), \
                (select coalesce(sum(delta), 0) from pgbench_history), \
                (select count(*) from pgbench_history)",
    )?;
    let v: Vec<i64> = row
        .split('|')
        .map(|f| f.parse().map_err(|_| format!("unexpected answer {row:?}")))
        .collect::<Result<_, _>>()?;
    let [branches, tellers, accounts, distinct, b, t, a, h, history] = v[..] else {
        return Err(format!("unexpected answer {row:?}"));
    };
    let s = i64::try_from(scale).unwrap();
    let mut wrong = Vec::new();
    if (branches, tellers, accounts) != (s, 10 * s, 100_000 * s) {
        wrong.push(format!(
            "row counts {branches} branches, {tellers} tellers, {accounts} accounts instead of \
             {s}, {}, {}",
            10 * s,
            100_000 * s
        ));
    }
    if distinct != accounts {
        wrong.push(format!(
            "{accounts} account rows but {distinct} distinct aid"
        ));
    }
    if !(a == b && b == t && t == h) {
        wrong.push(format!(
            "balances differ: sum(abalance) {a}, sum(bbalance) {b}, sum(tbalance) {t}, \
             sum(delta) of {history} history rows {h}"
        ));
    }
    if wrong.is_empty() {
        Ok(format!("{history} transactions, balance sums all {a}"))
    } else {
        Err(wrong.join("; "))
    }
}

/// The ledger holds exactly 1..M (read from the heap: index scans off) with
/// `at_least <= M <= at_most`.
pub fn ledger(server: &PgServer, at_least: u64, at_most: Option<u64>) -> Result<String, String> {
    let row = server.psql(
        "set enable_indexscan = off; set enable_indexonlyscan = off; \
         set enable_bitmapscan = off; \
         select count(*), count(distinct id), coalesce(min(id), 0), coalesce(max(id), 0) \
         from ledger",
    )?;
    let v: Vec<u64> = row
        .split('|')
        .map(|f| f.parse().map_err(|_| format!("unexpected answer {row:?}")))
        .collect::<Result<_, _>>()?;
    let [count, distinct, min, max] = v[..] else {
        return Err(format!("unexpected answer {row:?}"));
    };
    if count != distinct || (count > 0 && (min != 1 || max != count)) {
        return Err(format!(
            "not a gap-free prefix 1..M: {count} rows, {distinct} distinct ids from {min} to \
             {max}"
        ));
    }
    let m = count;
    if m < at_least {
        return Err(format!(
            "ids 1..{m}, but {at_least} had been acknowledged before the copy: committed \
             transactions are missing"
        ));
    }
    if let Some(most) = at_most.filter(|&most| m > most) {
        return Err(format!(
            "ids 1..{m}, but at most {most} can have committed before the freeze"
        ));
    }
    Ok(match at_most {
        Some(most) => format!("ids 1..{m} ({at_least} acknowledged, at most {most} committed)"),
        None => format!("ids 1..{m} ({at_least} acknowledged before the copy)"),
    })
}
