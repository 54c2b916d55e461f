//! Every committed fuzz input (`fuzz/corpus/<target>/`, and the inputs that
//! once crashed a target, `fuzz/regressions/<target>/`) runs through its
//! target on the stable toolchain. A panic anywhere, even one a query
//! runtime would catch and turn into an error, fails the test.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

static PANICS: AtomicUsize = AtomicUsize::new(0);
/// One replay at a time: the panic count is process-wide.
static ONE: Mutex<()> = Mutex::new(());

fn inputs(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for kind in ["corpus", "regressions"] {
        if let Ok(entries) = std::fs::read_dir(root.join(kind).join(target)) {
            files.extend(
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.path())
                    .filter(|p| p.is_file()),
            );
        }
    }
    files.sort();
    files
}

fn replay(target: &str) {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let files = inputs(target);
    assert!(!files.is_empty(), "no committed inputs for {target}");
    // `scripts/fuzz.sh` sets this after a run: corpus inputs whose panic
    // the code contained (the target returned) move to
    // `fuzz/contained/<target>/`, where `contained_panics_end_as_errors`
    // replays them. A panic that escapes still fails.
    let sort_contained = std::env::var_os("GYRUS_FUZZ_MOVE_CONTAINED").is_some();
    let contained_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/contained")
        .join(target);
    let mut failed = Vec::new();
    for file in &files {
        let data = std::fs::read(file).unwrap();
        let before = PANICS.load(Ordering::SeqCst);
        let outcome = std::panic::catch_unwind(|| gyrus_fuzz_targets::run(target, &data));
        let panicked = PANICS.load(Ordering::SeqCst) != before;
        let in_corpus = file
            .parent()
            .and_then(|p| p.parent())
            .and_then(|p| p.file_name())
            == Some(std::ffi::OsStr::new("corpus"));
        if sort_contained && outcome.is_ok() && panicked && in_corpus {
            std::fs::create_dir_all(&contained_dir).unwrap();
            let name = format!("contained-{}", file.file_name().unwrap().to_string_lossy());
            std::fs::rename(file, contained_dir.join(&name)).unwrap();
            eprintln!(
                "moved {} to {}",
                file.display(),
                contained_dir.join(name).display()
            );
        } else if outcome.is_err() || panicked {
            failed.push(file.display().to_string());
        }
    }
    let _ = std::panic::take_hook();
    assert!(
        failed.is_empty(),
        "{target}: these inputs panicked: {failed:#?}"
    );
}

#[test]
fn sql() {
    replay("sql");
}

#[test]
fn params() {
    replay("params");
}

#[test]
fn upload() {
    replay("upload");
}

#[test]
fn flight_stream() {
    replay("flight_stream");
}

#[test]
fn flight_command() {
    replay("flight_command");
}

#[test]
fn cursor() {
    replay("cursor");
}

#[test]
fn connector_answer() {
    replay("connector_answer");
}

#[test]
fn settings() {
    replay("settings");
}

#[test]
fn every_target_has_a_replay() {
    let names: Vec<_> = gyrus_fuzz_targets::TARGETS
        .iter()
        .map(|(n, _)| *n)
        .collect();
    let source = include_str!("replay.rs");
    for name in names {
        assert!(
            source.contains(&format!("replay(\"{name}\")")),
            "{name} is never replayed"
        );
        let bin =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../fuzz/fuzz_targets/{name}.rs"));
        assert!(bin.exists(), "no fuzz target file for {name}");
    }
}

/// Inputs that make a dependency panic where no check of ours can see it
/// first (`fuzz/contained/<target>/`: parquet-rs asserting on a corrupt
/// page). The panic is caught where the bytes enter (`gyrus_ingest::read`)
/// and becomes an error of that request: the target must return normally.
#[test]
fn contained_panics_end_as_errors() {
    let _one = ONE.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/contained");
    let mut seen = 0;
    for target in std::fs::read_dir(&root).unwrap().filter_map(|e| e.ok()) {
        let name = target.file_name().to_string_lossy().to_string();
        for file in std::fs::read_dir(target.path())
            .unwrap()
            .filter_map(|e| e.ok())
        {
            let data = std::fs::read(file.path()).unwrap();
            let outcome = std::panic::catch_unwind(|| gyrus_fuzz_targets::run(&name, &data));
            assert!(
                outcome.is_ok(),
                "{}: a panic escaped",
                file.path().display()
            );
            seen += 1;
        }
    }
    assert!(seen > 0, "no contained inputs under {}", root.display());
}

/// The first allocation bomb the `upload` fuzzer found (round 8): a 3 KiB
/// Parquet file whose dictionary page claims 811,614,343 values, so that
/// parquet-rs reserved 3.2 GB of offsets before reading a byte of it. A
/// refused allocation aborts the process, so the replay above (which would
/// only reserve the memory here) is not enough: the file must be refused
/// from its footer or page headers, before any page is decoded.
#[test]
fn a_dictionary_claiming_more_values_than_its_bytes_is_refused_unread() {
    let data = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions/upload/oom-fe71889ac947b550cc24c2c0b5adecf64cbe4261"),
    )
    .unwrap();
    let (&pick, body) = data.split_first().unwrap();
    assert_eq!(pick % 4, 2, "a Parquet input");
    let table = gyrus_engine::schema::CanonicalTable::ALL
        [(pick as usize >> 2) % gyrus_engine::schema::CanonicalTable::ALL.len()];
    let err = gyrus_ingest::read(
        table,
        gyrus_ingest::Format::Parquet,
        "bomb.parquet",
        bytes::Bytes::copy_from_slice(body),
    )
    .unwrap_err()
    .to_string();
    // Its footer is refused first: a field of it has another wire type
    // than the format gives it (parquet-rs reads known fields by their id
    // whatever type the wire gives them, and so read this one). The
    // dictionary-page refusal is tested on an honest file in
    // `parquet_pages`. Both come before any page is decoded.
    assert!(
        err.contains("a field has another type than the Parquet format gives it"),
        "{err}"
    );
}
