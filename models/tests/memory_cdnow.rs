//! MEMORY against the published CDNOW fits (Fader, Hardie & Lee 2005), on
//! the CDNOW sample shipped in the PyPI package `lifetimes` (installed into
//! `.venv` by scripts/test.sh; `GYRUS_LIFETIMES_DATASETS` may point
//! elsewhere).
//!
//! The paper's calibration period is the 39 weeks from 1997-01-01 to
//! 1997-09-30, with time in weeks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::NaiveDate;
use gyrus_engine::datafusion::arrow::array::{
    ArrayRef, Decimal128Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use gyrus_engine::schema::CanonicalTable;
use gyrus_engine::{Store, TenantId, WriteRequest};
use gyrus_models::memory::data::load;
use gyrus_models::memory::model::fit_customers;
use gyrus_models::memory::{Groups, Summary, bgnbd, gamma_gamma};

/// Where the `lifetimes` package keeps its data sets.
fn lifetimes_datasets() -> PathBuf {
    gyrus_datasets::package_data("lifetimes", "datasets", "GYRUS_LIFETIMES_DATASETS")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// (customer, day number, dollars) per row of CDNOW_sample.txt.
fn cdnow_sample() -> Vec<(String, i64, f64)> {
    // Columns: id in CDNOW_master, id in the sample, date, CDs, dollars.
    read_cdnow("CDNOW_sample.txt", 1, 2, 4)
}

/// (customer, day number, dollars) per row of CDNOW_master.txt (a header,
/// then customer, date, CDs, dollars).
fn cdnow_master() -> Vec<(String, i64, f64)> {
    read_cdnow("CDNOW_master.txt", 0, 1, 3)
}

fn read_cdnow(file: &str, id: usize, date: usize, dollars: usize) -> Vec<(String, i64, f64)> {
    let path = lifetimes_datasets().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let when = NaiveDate::parse_from_str(f[date], "%Y%m%d").ok()?; // the header
            Some((f[id].to_string(), day(when), f[dollars].parse().unwrap()))
        })
        .collect()
}

fn day(date: NaiveDate) -> i64 {
    (date - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days()
}

fn calibration_end() -> i64 {
    day(NaiveDate::from_ymd_opt(1997, 9, 30).unwrap())
}

/// Calibration-period summaries, per customer in id order.
fn calibration_summaries() -> Vec<(String, Summary)> {
    let mut histories: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for (customer, day, value) in cdnow_sample() {
        let history = histories.entry(customer).or_default();
        if day <= calibration_end() {
            history.push((day, value));
        }
    }
    histories
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(c, h)| (c, Summary::from_history(&h, calibration_end()).unwrap()))
        .collect()
}

fn three_significant_digits(value: f64, published: f64) -> bool {
    let magnitude = 10f64.powi(published.abs().log10().floor() as i32 - 2);
    (value / magnitude).round() == (published / magnitude).round()
}

#[test]
fn summaries_match_the_packages_cdnow_summary() {
    let ours = calibration_summaries();
    assert_eq!(ours.len(), 2357);
    let csv = std::fs::read_to_string(
        lifetimes_datasets().join("cdnow_customers_summary_with_transactions.csv"),
    )
    .unwrap();
    let mut rows = 0;
    for (line, (_, s)) in csv.lines().skip(1).zip(&ours) {
        let f: Vec<f64> = line.split(',').map(|v| v.parse().unwrap()).collect();
        assert_eq!(f64::from(s.frequency), f[1], "{line}");
        assert!((s.recency - f[2]).abs() < 0.006, "{line}: {s:?}");
        assert!((s.tenure - f[3]).abs() < 0.006, "{line}: {s:?}");
        assert!((s.monetary - f[4]).abs() < 0.006, "{line}: {s:?}");
        rows += 1;
    }
    assert_eq!(rows, 2357);
}

#[test]
fn bgnbd_and_gamma_gamma_reproduce_the_published_cdnow_fits() {
    let summaries = calibration_summaries();
    let x: Vec<u32> = summaries.iter().map(|s| s.1.frequency).collect();
    let tx: Vec<f64> = summaries.iter().map(|s| s.1.recency).collect();
    let t: Vec<f64> = summaries.iter().map(|s| s.1.tenure).collect();
    let m: Vec<f64> = summaries.iter().map(|s| s.1.monetary).collect();
    let fit = bgnbd::fit(&Groups::new(&x, &tx, &t)).unwrap();
    let p = fit.params;
    for (name, value, published) in [
        ("r", p.r, 0.243),
        ("alpha", p.alpha, 4.414),
        ("a", p.a, 0.793),
        ("b", p.b, 2.426),
    ] {
        assert!(
            three_significant_digits(value, published),
            "{name} = {value}, paper {published}"
        );
    }
    // The paper's log-likelihood is −9582.4.
    assert!(
        (fit.log_likelihood + 9582.4).abs() < 0.5,
        "{}",
        fit.log_likelihood
    );
    let gg = gamma_gamma::fit(&x, &m).unwrap();
    assert_eq!(gg.customers, 946);
    let g = gg.params;
    for (name, value, published) in [
        ("p", g.p, 6.25),
        ("q", g.q, 3.74),
        ("gamma", g.gamma, 15.44),
    ] {
        assert!(
            three_significant_digits(value, published),
            "{name} = {value}, paper {published}"
        );
    }
    // FHL report no meaningful correlation between frequency and value (0.11).
    assert!(
        gg.frequency_value_correlation.abs() < 0.2,
        "{}",
        gg.frequency_value_correlation
    );
    // The combined model's mean order value for a one-time buyer.
    let (model, _) = fit_customers(&x, &tx, &t, &m, 0.0).unwrap();
    let population = model
        .gamma_gamma
        .unwrap()
        .params
        .expected_value(0, 0.0)
        .unwrap();
    assert!(
        (population - 6.25 * 15.44 / 2.74).abs() < 0.5,
        "{population}"
    );
}

/// The same fit, read through the store: orders written as a tenant's
/// table, summarised with DataFusion, with the paper's holdout (1997-10-01
/// to 1998-06-30) as the validation period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipelines_summaries_and_validation_reproduce_the_paper() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let tenant = TenantId::new("cdnow").unwrap();
    write_orders(&store, &tenant, &cdnow_sample()).await;
    let data = load(&store, &tenant, Some(273)).await.unwrap();
    let customers = data.customers.unwrap();
    assert_eq!(customers.len(), 2357);
    assert_eq!(customers.end, NaiveDate::from_ymd_opt(1998, 6, 30).unwrap());
    let holdout = customers.holdout.as_ref().unwrap();
    assert_eq!(
        holdout.calibration_end,
        NaiveDate::from_ymd_opt(1997, 9, 30).unwrap()
    );
    assert_eq!(holdout.frequency.len(), 2357);
    let validation = gyrus_models::memory::model::validate(holdout).unwrap();
    let p = validation.calibration_params;
    for (value, published) in [(p.r, 0.243), (p.alpha, 4.414), (p.a, 0.793), (p.b, 2.426)] {
        assert!(three_significant_digits(value, published), "{p:?}");
    }
    // 1,882 purchase days in the holdout (counted from the file with awk),
    // and the calibration model's forecast within 10% of it.
    assert_eq!(validation.actual_purchases, 1882.0);
    assert!(validation.bucket_error < 0.25, "{validation:?}");
    assert!(
        (validation.predicted_purchases / 1788.0 - 1.0).abs() < 0.1,
        "{validation:?}"
    );
}

/// Orders as a tenant's `orders` table, on their own dates (1997–98: tables
/// take dates from 1900 on).
async fn write_orders(store: &Store, tenant: &TenantId, rows: &[(String, i64, f64)]) {
    let n = rows.len();
    let micros: Vec<i64> = rows.iter().map(|r| r.1 * 86_400_000_000).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("o{i}")),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.0.as_str()),
        )),
        Arc::new(TimestampMicrosecondArray::from(micros).with_timezone("UTC")),
        Arc::new(
            Decimal128Array::from_iter_values(rows.iter().map(|r| (r.2 * 1e6).round() as i128))
                .with_precision_and_scale(18, 6)
                .unwrap(),
        ),
        Arc::new(StringArray::from(vec!["USD"; n])),
        Arc::new(StringArray::from(vec!["paid"; n])),
        Arc::new(StringArray::from(vec!["shopify"; n])),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
        Arc::new(StringArray::from(vec![None::<&str>; n])),
    ];
    let batch = RecordBatch::try_new(CanonicalTable::Orders.schema(), columns).unwrap();
    store
        .write(
            tenant,
            WriteRequest::append(CanonicalTable::Orders, vec![batch]),
        )
        .await
        .unwrap();
}

/// The whole of CDNOW (69,659 purchases by 23,570 customers, 1997-01-01 to
/// 1998-06-30), ingested on its own dates and fitted through the pipeline,
/// against the `lifetimes` package's BG/NBD on the same calibration period
/// (to 1997-09-30, purchase days, weeks): r 0.2516, α 4.789, a 0.7234,
/// b 2.161 (lifetimes 0.11.3; `benches/cdnow.py` fits the same summaries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdnow_master_ingests_on_its_own_dates_and_fits_as_lifetimes_does() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().to_str().unwrap()).await.unwrap();
    let tenant = TenantId::new("cdnow").unwrap();
    let rows = cdnow_master();
    assert_eq!(rows.len(), 69_659);
    write_orders(&store, &tenant, &rows).await;
    let started = std::time::Instant::now();
    let data = load(&store, &tenant, Some(273)).await.unwrap();
    let customers = data.customers.unwrap();
    assert_eq!(customers.len(), 23_570);
    assert_eq!(customers.end, NaiveDate::from_ymd_opt(1998, 6, 30).unwrap());
    let holdout = customers.holdout.as_ref().unwrap();
    let validation = gyrus_models::memory::model::validate(holdout).unwrap();
    let p = validation.calibration_params;
    for (name, value, lifetimes) in [
        ("r", p.r, 0.2516),
        ("alpha", p.alpha, 4.789),
        ("a", p.a, 0.7234),
        ("b", p.b, 2.161),
    ] {
        assert!(
            (value / lifetimes - 1.0).abs() < 0.01,
            "{name} = {value}, lifetimes {lifetimes}"
        );
    }
    let (model, _) = fit_customers(
        &customers.frequency,
        &customers.recency(),
        &customers.tenure(),
        &customers.monetary,
        0.0,
    )
    .unwrap();
    println!(
        "CDNOW_master: {} purchases, {} customers; load + holdout validation + full fit {:.2} s; \
         calibration BG/NBD {p:?}; full-period BG/NBD {:?}; Gamma-Gamma {:?}",
        rows.len(),
        customers.len(),
        started.elapsed().as_secs_f64(),
        model.bgnbd.params,
        model.gamma_gamma.map(|g| g.params),
    );
}
