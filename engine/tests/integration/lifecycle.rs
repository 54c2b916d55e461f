//! A tenant's life as a unit: erased without a trace, and snapshots that
//! restore every table as it was.

use std::path::Path;

use crate::common::*;
use gyrus_engine::datafusion::arrow::array::{AsArray, RecordBatch};
use gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches;
use gyrus_engine::datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use gyrus_engine::lease::Taken;
use gyrus_engine::lifecycle::TenantRows;
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Role, SessionLimits, Store, TenantId, WriteRequest};

const OWNERS: [&dyn TenantRows; 1] = [&gyrus_engine::keys::TENANT_ROWS];

/// `acme` and `globex`, each with ad rows, orders-free, a key, a lease and a
/// claim; acme's ad table has two commits and a loose file.
async fn two_tenants() -> (tempfile::TempDir, Store, Vec<String>) {
    let (dir, store) = temp_store().await;
    let mut secrets = Vec::new();
    for (name, commits) in [("acme", 2), ("globex", 1)] {
        let t = tenant(name);
        for i in 0..commits {
            let account = format!("{name}-account-{i}");
            store
                .write(
                    &t,
                    WriteRequest::append(
                        CanonicalTable::AdPerformance,
                        vec![batch(&rows(&account, name, day(2026, 1, 1), 30, 2, 1))],
                    ),
                )
                .await
                .unwrap();
        }
        secrets.push(store.create_key(&t, Role::Admin).await.unwrap().secret);
        let Taken::Held(lease) = store
            .take_lease(
                &["train", name, "oracle"],
                std::time::Duration::from_secs(60),
            )
            .await
            .unwrap()
        else {
            panic!("the lease is free");
        };
        lease.release().await.unwrap();
        assert!(
            store
                .claim(&["model_versions", name, "oracle", "1"], "test")
                .await
                .unwrap()
        );
    }
    store
        .put_tenant_file(&tenant("acme"), "ground_truth.json", b"{}".to_vec())
        .await
        .unwrap();
    (dir, store, secrets)
}

/// Every file under `root`, relative to it.
fn files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Every row of every Parquet file under `folder`, current or not.
fn physical_rows(folder: &Path) -> Vec<RecordBatch> {
    files(folder)
        .into_iter()
        .filter(|f| f.ends_with(".parquet") && !f.contains("_delta_log"))
        .flat_map(|f| {
            let file = std::fs::File::open(folder.join(f)).unwrap();
            ParquetRecordBatchReaderBuilder::try_new(file)
                .unwrap()
                .build()
                .unwrap()
                .map(|b| b.unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A tenant's table as sorted lines of text (empty when it has none).
async fn table_text(store: &Store, tenant: &TenantId, table: CanonicalTable) -> Vec<String> {
    if store.table(tenant, table).await.unwrap().is_none() {
        return Vec::new();
    }
    let session = store
        .session(tenant, &SessionLimits::default())
        .await
        .unwrap();
    let batches = session
        .query(&format!("SELECT * FROM {}", table.name()))
        .await
        .unwrap();
    sorted_lines(&batches)
}

fn sorted_lines(batches: &[RecordBatch]) -> Vec<String> {
    let text = pretty_format_batches(batches).unwrap().to_string();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// Every table of the store, as text: each tenant's canonical tables and
/// each system table.
async fn everything(store: &Store) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for t in store.tenants().await.unwrap() {
        for table in CanonicalTable::ALL {
            out.push((format!("{t}.{table}"), table_text(store, &t, table).await));
        }
    }
    for (name, _) in store.system_tables().await.unwrap() {
        let batches = store.scan_system(&name, &[], None).await.unwrap();
        out.push((format!("_system.{name}"), sorted_lines(&batches)));
    }
    out
}

#[tokio::test]
async fn erase_leaves_nothing_of_the_tenant_and_keeps_the_others() {
    let (dir, store, secrets) = two_tenants().await;
    let (acme, globex) = (tenant("acme"), tenant("globex"));
    let before = files(dir.path());
    assert!(before.iter().any(|f| f.contains("acme")), "{before:#?}");
    let globex_rows = table_text(&store, &globex, CanonicalTable::AdPerformance).await;

    // Not while a training run holds one of its leases.
    let Taken::Held(lease) = store
        .take_lease(
            &["train", "acme", "memory"],
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap()
    else {
        panic!("the lease is free");
    };
    let err = store
        .erase_tenant(&acme, &OWNERS)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("train/acme/memory held by"), "{err}");
    let now = files(dir.path());
    assert!(
        before.iter().all(|f| now.contains(f)),
        "the refusal removed something"
    );
    lease.release().await.unwrap();

    let report = store.erase_tenant(&acme, &OWNERS).await.unwrap();

    let after = files(dir.path());
    let left: Vec<_> = after.iter().filter(|f| f.contains("acme")).collect();
    assert!(left.is_empty(), "files of acme after the erase: {left:#?}");
    // Nothing but the tenant's files went away, beside the rewritten key file.
    for file in before.iter().filter(|f| f.contains("globex")) {
        assert!(after.contains(file), "{file} of globex was removed");
    }
    // Not a row of acme in any data file of the key table, current or old.
    let keys = physical_rows(&dir.path().join("_system/api_keys"));
    let tenants: Vec<&str> = keys
        .iter()
        .flat_map(|b| {
            b.column_by_name("tenant_id")
                .unwrap()
                .as_string::<i32>()
                .iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!tenants.is_empty() && tenants.iter().all(|t| *t == "globex"));
    // The report says what went: one key row, the ad table, the loose file,
    // the lease and the claim.
    let what = |place: &str| report.removed.iter().find(|r| r.what == place).cloned();
    assert_eq!(what("_system/api_keys").map(|r| r.rows), Some(1));
    assert!(what("tenants/acme/ad_performance").is_some_and(|r| r.objects >= 4 && r.bytes > 0));
    assert_eq!(what("tenants/acme").map(|r| r.objects), Some(1));
    assert_eq!(what("_system/leases").map(|r| r.objects > 0), Some(true));
    assert_eq!(what("_system/claims").map(|r| r.objects), Some(1));
    // acme is gone; globex works as before.
    assert!(store.authenticate(&secrets[0]).await.unwrap().is_none());
    assert!(store.authenticate(&secrets[1]).await.unwrap().is_some());
    assert_eq!(store.tenants().await.unwrap(), vec![globex.clone()]);
    assert_eq!(
        table_text(&store, &globex, CanonicalTable::AdPerformance).await,
        globex_rows
    );
    // A second erase finds nothing and says so.
    assert!(store.erase_tenant(&acme, &OWNERS).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_store_table_for_table() {
    let (_dir, store, secrets) = two_tenants().await;
    // acme's ad table reads from a checkpoint: the backup copies the log
    // from there, not from commit 0.
    let ads = store
        .table(&tenant("acme"), CanonicalTable::AdPerformance)
        .await
        .unwrap()
        .unwrap();
    deltalake_core::checkpoints::create_checkpoint(&ads, None)
        .await
        .unwrap();
    let backup_dir = tempfile::tempdir().unwrap();
    let target = Store::open(backup_dir.path().to_str().unwrap())
        .await
        .unwrap();
    let manifest = store.backup(&target, None, &OWNERS).await.unwrap();
    assert_eq!(manifest.tenant, None);
    let acme_ads = manifest
        .tables
        .iter()
        .find(|t| t.path == "tenants/acme/ad_performance")
        .expect("acme's ad table is in the backup");
    assert_eq!((acme_ads.rows, acme_ads.version), (120, 2));
    assert!(manifest.tables.iter().any(|t| t.path == "_system/api_keys"));
    let log = backup_dir
        .path()
        .join("tenants/acme/ad_performance/_delta_log");
    assert!(log.join("00000000000000000002.checkpoint.parquet").exists());
    assert!(!log.join("00000000000000000000.json").exists());

    // Writes after the backup are not in it.
    store
        .write(
            &tenant("acme"),
            WriteRequest::append(
                CanonicalTable::AdPerformance,
                vec![batch(&rows("late", "late", day(2026, 2, 1), 5, 1, 1))],
            ),
        )
        .await
        .unwrap();

    let restored_dir = tempfile::tempdir().unwrap();
    let restored = Store::open(restored_dir.path().to_str().unwrap())
        .await
        .unwrap();
    restored.restore(&target, &OWNERS).await.unwrap();
    let expected = everything(&target).await;
    assert_eq!(everything(&restored).await, expected);
    assert_eq!(
        scalar(
            &restored,
            &tenant("acme"),
            "SELECT count(*) FROM ad_performance"
        )
        .await,
        "120"
    );
    assert!(restored.authenticate(&secrets[0]).await.unwrap().is_some());
    assert!(
        restored_dir
            .path()
            .join("tenants/acme/ground_truth.json")
            .exists()
    );

    // Running it again changes nothing; a store with other data refuses it.
    restored.restore(&target, &OWNERS).await.unwrap();
    assert_eq!(everything(&restored).await, expected);
    let err = store
        .restore(&target, &OWNERS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already has tenants/acme/ad_performance"),
        "{err}"
    );

    // A backup never lands on something else, and a folder that is not a
    // finished backup is not restored.
    let err = store
        .backup(&target, None, &OWNERS)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not empty"), "{err}");
    std::fs::remove_file(backup_dir.path().join("backup.json")).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let empty = Store::open(empty.path().to_str().unwrap()).await.unwrap();
    let err = empty
        .restore(&target, &OWNERS)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("no backup.json"), "{err}");
    assert!(empty.tenants().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_exported_tenant_comes_back_after_its_erase() {
    let (_dir, store, secrets) = two_tenants().await;
    let acme = tenant("acme");
    let before = everything(&store).await;
    let export_dir = tempfile::tempdir().unwrap();
    let export = Store::open(export_dir.path().to_str().unwrap())
        .await
        .unwrap();
    let manifest = store.backup(&export, Some(&acme), &OWNERS).await.unwrap();
    assert_eq!(manifest.tenant.as_deref(), Some("acme"));
    // Only acme's: its table and its key row, no other tenant's.
    assert!(manifest.tables.iter().all(|t| !t.path.contains("globex")));
    let keys = export.scan_system("api_keys", &[], None).await.unwrap();
    assert_eq!(keys.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);

    store.erase_tenant(&acme, &OWNERS).await.unwrap();
    assert!(store.authenticate(&secrets[0]).await.unwrap().is_none());

    // An export altered to carry another tenant's key adds only acme's rows;
    // one that names another tenant's table is refused whole.
    let planted = export
        .create_key(&tenant("globex"), Role::Admin)
        .await
        .unwrap();
    let manifest_path = export_dir.path().join("backup.json");
    let honest = std::fs::read_to_string(&manifest_path).unwrap();
    let forged = honest.replacen(
        "tenants/acme/ad_performance",
        "tenants/globex/ad_performance",
        1,
    );
    std::fs::write(&manifest_path, forged).unwrap();
    let err = store
        .restore(&export, &OWNERS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("snapshot of tenant acme but holds tenants/globex"),
        "{err}"
    );
    std::fs::write(&manifest_path, honest).unwrap();

    store.restore(&export, &OWNERS).await.unwrap();
    assert!(store.authenticate(&planted.secret).await.unwrap().is_none());
    // Twice: the key row is added once.
    store.restore(&export, &OWNERS).await.unwrap();
    assert!(store.authenticate(&secrets[0]).await.unwrap().is_some());
    let after = everything(&store).await;
    for (name, rows) in &before {
        if name.starts_with("_system") {
            continue;
        }
        let now = after.iter().find(|(n, _)| n == name).map(|(_, r)| r);
        assert_eq!(now, Some(rows), "{name}");
    }
    let keys = store.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");

    // An unknown tenant has nothing to export.
    let other = tempfile::tempdir().unwrap();
    let other = Store::open(other.path().to_str().unwrap()).await.unwrap();
    let err = store
        .backup(&other, Some(&tenant("nobody")), &OWNERS)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("nothing in this store"), "{err}");
}

async fn open(path: &Path) -> Store {
    Store::open(path.to_str().unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_backup_never_copies_a_store_into_itself() {
    let (dir, store, _) = two_tenants().await;
    let targets = [
        (store.clone(), "it is the store itself"),
        (
            open(&dir.path().join("backups/today")).await,
            "it lies inside the store",
        ),
        (
            open(dir.path().parent().unwrap()).await,
            "the store lies inside it",
        ),
    ];
    let before = files(dir.path());
    for (target, why) in &targets {
        let refused = store.backup(target, None, &OWNERS).await.unwrap_err();
        assert!(refused.to_string().contains(why), "{refused}");
        let refused = store.restore(target, &OWNERS).await.unwrap_err();
        assert!(refused.to_string().contains(why), "{refused}");
    }
    assert_eq!(files(dir.path()), before, "nothing was written");
    // A folder beside the store whose name begins the same is apart from it.
    let beside = format!("{}-copy", dir.path().display());
    store
        .backup(&open(Path::new(&beside)).await, None, &OWNERS)
        .await
        .unwrap();
    std::fs::remove_dir_all(beside).unwrap();
}

#[tokio::test]
async fn a_restore_stopped_part_way_finishes_when_run_again() {
    let (_dir, store, secrets) = two_tenants().await;
    let backup_dir = tempfile::tempdir().unwrap();
    let snapshot = open(backup_dir.path()).await;
    store.backup(&snapshot, None, &OWNERS).await.unwrap();
    let expected = everything(&snapshot).await;

    // What a kill between two copies leaves: acme's ad table with its
    // newest commit but not its first, and a data file not yet there. The
    // Delta kernel does not load such a table.
    let target_dir = tempfile::tempdir().unwrap();
    let target = open(target_dir.path()).await;
    target.restore(&snapshot, &OWNERS).await.unwrap();
    let table = target_dir.path().join("tenants/acme/ad_performance");
    std::fs::remove_file(table.join("_delta_log/00000000000000000000.json")).unwrap();
    let data = std::fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "parquet"))
        .unwrap();
    std::fs::remove_file(&data).unwrap();
    assert!(
        target
            .table(&tenant("acme"), CanonicalTable::AdPerformance)
            .await
            .is_err()
    );

    target.restore(&snapshot, &OWNERS).await.unwrap();
    assert_eq!(everything(&target).await, expected);
    assert!(target.authenticate(&secrets[0]).await.unwrap().is_some());

    // A table holding anything the snapshot does not is not overwritten.
    std::fs::remove_file(table.join("_delta_log/00000000000000000000.json")).unwrap();
    std::fs::write(table.join("notes.txt"), b"mine").unwrap();
    let err = target
        .restore(&snapshot, &OWNERS)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already has tenants/acme/ad_performance (a table that does not load)"),
        "{err}"
    );
    assert!(table.join("notes.txt").exists());
}
