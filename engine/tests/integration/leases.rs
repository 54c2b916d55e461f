//! Exclusive work across processes: a lease held by a process that is
//! SIGKILLed is refused to others while it lasts and taken over once it
//! expires; a claim is won by exactly one of many racing processes.
//!
//! Like `crash`, the test re-runs its own binary as the other process (the
//! ignored tests below, selected by name).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gyrus_engine::Store;
use gyrus_engine::lease::Taken;

const DIR_VAR: &str = "GYRUS_LEASE_DIR";
const TTL: Duration = Duration::from_secs(2);
const LEASE: [&str; 3] = ["train", "acme", "oracle"];

fn child(test: &str, dir: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            test,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DIR_VAR, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for `line` on the child's output (libtest may print its own text first).
fn wait_for(child: &mut std::process::Child, word: &str) -> String {
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
    lines
        .find(|l| l.contains(word))
        .unwrap_or_else(|| panic!("the child never said {word}"))
}

/// The holder: takes the lease, says so, and keeps it (renewing) until killed.
#[tokio::test]
#[ignore = "run by a_killed_holders_lease_is_taken_over as a child process"]
async fn lease_holder() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let store = Store::open(&dir).await.unwrap();
    let Taken::Held(lease) = store.take_lease(&LEASE, TTL).await.unwrap() else {
        panic!("the lease should be free");
    };
    println!("HELD {}", lease.holder());
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(lease);
}

#[tokio::test]
async fn a_killed_holders_lease_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let mut holder = child("leases::lease_holder", dir.path());
    let said = wait_for(&mut holder, "HELD ");
    let holder_id = said.split("HELD ").nth(1).unwrap().trim().to_string();
    // While it lives (and renews, past several expiries), nobody else gets it.
    for _ in 0..3 {
        match store.take_lease(&LEASE, TTL).await.unwrap() {
            Taken::Busy(state) => assert_eq!(state.holder, holder_id),
            Taken::Held(_) => panic!("a live holder's lease was taken"),
        }
        tokio::time::sleep(TTL).await;
    }
    holder.kill().unwrap(); // SIGKILL on Unix: no release, no cleanup
    holder.wait().unwrap();
    let killed = Instant::now();
    // Refused until it expires, then taken; bounded so a bug cannot hang CI.
    let taken = loop {
        match store.take_lease(&LEASE, TTL).await.unwrap() {
            Taken::Held(lease) => break lease,
            Taken::Busy(state) => assert_eq!(state.holder, holder_id),
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the dead holder's lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_ne!(taken.holder(), holder_id);
    let state = store.lease_state(&LEASE).await.unwrap().unwrap();
    assert_eq!(state.holder, taken.holder());
}

/// One racer: claims names 0..50 as fast as it can and prints those it won.
#[tokio::test]
#[ignore = "run by a_claim_is_won_by_exactly_one_process as a child process"]
async fn claim_racer() {
    let Ok(dir) = std::env::var(DIR_VAR) else {
        return;
    };
    let store = Store::open(&dir).await.unwrap();
    let mut won = Vec::new();
    for n in 0..50 {
        if store
            .claim(
                &["model_versions", "acme", "oracle", &n.to_string()],
                "racer",
            )
            .await
            .unwrap()
        {
            won.push(n.to_string());
        }
    }
    println!("WON [{}]", won.join(","));
}

#[test]
fn a_claim_is_won_by_exactly_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut racers: Vec<_> = (0..4)
        .map(|_| child("leases::claim_racer", dir.path()))
        .collect();
    let mut wins = vec![0; 50];
    for racer in &mut racers {
        let said = wait_for(racer, "WON [");
        let list = said.split("WON [").nth(1).unwrap().trim_end_matches(']');
        for n in list.split(',').filter(|s| !s.is_empty()) {
            wins[n.parse::<usize>().unwrap()] += 1;
        }
        racer.wait().unwrap();
    }
    assert!(
        wins.iter().all(|&w| w == 1),
        "each name won exactly once: {wins:?}"
    );
}
