//! Statements built to crash or exhaust the process: each is refused with an
//! error naming its bound, or answered, and the session keeps serving. What
//! the bounds let through runs on the query runtime's stacks without
//! overflowing them (a stack overflow aborts the process, so passing at all
//! is the assertion).

use crate::common::*;
use gyrus_engine::shape::SqlBounds;
use gyrus_engine::{EngineError, SessionLimits, TenantSession};

/// A session over a tenant with data, so that filters reach a Delta scan
/// (which rewrites them for file skipping, e.g. `IN` lists into `OR` chains).
async fn session(limits: SessionLimits) -> (tempfile::TempDir, TenantSession) {
    let (dir, store) = temp_store().await;
    let acme = tenant("acme");
    let data = batch(&rows("acct", "camp", day(2026, 3, 1), 5, 2, 5));
    store
        .write(
            &acme,
            gyrus_engine::WriteRequest::append(
                gyrus_engine::schema::CanonicalTable::AdPerformance,
                vec![data],
            ),
        )
        .await
        .unwrap();
    let session = store.session(&acme, &limits).await.unwrap();
    (dir, session)
}

fn too_large(err: &EngineError, setting: &str) -> bool {
    matches!(err, EngineError::TooLarge { setting: s, .. } if *s == setting)
}

fn sum(terms: usize) -> String {
    format!("SELECT {}", vec!["1"; terms].join("+"))
}

#[tokio::test]
async fn deep_and_long_statements_are_refused_by_their_bounds() {
    let (_dir, session) = session(SessionLimits::default()).await;
    let cases = [
        ("5,000 terms", sum(5_000), "--max-sql-depth"),
        ("400k terms", sum(400_000), "--max-sql-depth"),
        ("1.5M terms", sum(1_500_000), "--max-sql-kb"),
        (
            "50,000 UNION ALL",
            vec!["SELECT 1"; 50_000].join(" UNION ALL "),
            "--max-sql-depth",
        ),
        (
            "5,000 UNION ALL",
            vec!["SELECT 1"; 5_000].join(" UNION ALL "),
            "--max-sql-depth",
        ),
        (
            "3,000 casts",
            format!("SELECT 1{}", "::bigint".repeat(3_000)),
            "--max-sql-depth",
        ),
        (
            "2,000 NOTs",
            format!("SELECT {} true", "NOT ".repeat(2_000)),
            "--max-sql-depth",
        ),
        (
            "an IN list of 60k values",
            format!(
                "SELECT count(*) FROM ad_performance WHERE clicks IN ({})",
                (0..60_000)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "--max-in-list",
        ),
        (
            "an IN list of 1M values",
            format!(
                "SELECT 1 WHERE 1 IN ({})",
                (0..1_000_000)
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            "--max-sql-kb",
        ),
    ];
    for (what, sql, setting) in cases {
        let err = session.query(&sql).await.unwrap_err();
        assert!(too_large(&err, setting), "{what}: {err}");
        assert!(err.to_string().contains(setting), "{what}: {err}");
    }
    // Deep brackets are sqlparser's recursion limit: a query error, no crash.
    let nested = format!("SELECT {}1{}", "(".repeat(5_000), ")".repeat(5_000));
    assert!(session.query(&nested).await.is_err());
    assert_eq!(scalar_of(&session, "SELECT 41 + 1").await, "42");
}

#[tokio::test]
async fn statements_just_inside_the_bounds_run_to_the_end() {
    let (_dir, session) = session(SessionLimits::default()).await;
    let depth = SqlBounds::default().max_depth;
    // As deep as allowed, in every shape the bound counts.
    assert_eq!(
        scalar_of(&session, &sum(depth - 10)).await,
        (depth - 10).to_string()
    );
    let unions = vec!["SELECT 1 AS one"; depth - 10].join(" UNION ALL ");
    assert_eq!(
        scalar_of(&session, &format!("SELECT count(*) FROM ({unions})")).await,
        (depth - 10).to_string()
    );
    let ands = format!(
        "SELECT count(*) FROM ad_performance WHERE {}",
        (0..(depth - 10) / 2)
            .map(|i| format!("clicks <> {i}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    );
    assert_eq!(scalar_of(&session, &ands).await, "0");
    let casts = format!("SELECT 7{}", "::bigint".repeat(depth - 10));
    assert_eq!(scalar_of(&session, &casts).await, "7");
    // The longest IN list allowed, on a Delta scan: answered.
    let longest = SqlBounds::default().max_in_list;
    let wide = format!(
        "SELECT count(*) FROM ad_performance WHERE clicks IN ({})",
        (0..longest)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    assert_eq!(scalar_of(&session, &wide).await, "10");
    // EXPLAIN of a deep statement displays its whole tree.
    assert!(
        session
            .query(&format!("EXPLAIN {}", sum(depth - 10)))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn bounds_are_settings() {
    let limits = SessionLimits {
        sql: SqlBounds {
            max_bytes: 64,
            max_depth: 4,
            max_in_list: 3,
        },
        ..SessionLimits::default()
    };
    let (_dir, session) = session(limits).await;
    assert!(too_large(
        &session.query("SELECT 1+1+1+1+1").await.unwrap_err(),
        "--max-sql-depth"
    ));
    assert!(too_large(
        &session
            .query(&format!("SELECT '{}'", "x".repeat(100)))
            .await
            .unwrap_err(),
        "--max-sql-kb"
    ));
    assert_eq!(scalar_of(&session, "SELECT 1+1").await, "2");
}
