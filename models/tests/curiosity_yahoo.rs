//! CURIOSITY on the labelled anomalies shipped in the PyPI package `sktime`
//! (`sktime/datasets/data/yahoo/yahoo.csv`: 1,000 points of a Yahoo
//! Webscope S5 series, 7 labelled anomalies), at the default sensitivity.
//! The series' cycle is found by its autocorrelation, not given.
//!
//! `cargo nextest run -p gyrus-models --test curiosity_yahoo --no-capture`
//! prints the figures.

use gyrus_models::curiosity::detect::{Sensitivity, scan_with_periods};
use gyrus_models::oracle::season::acf;

fn yahoo() -> (Vec<f64>, Vec<bool>) {
    let dir = gyrus_datasets::package_data("sktime", "datasets/data/yahoo", "GYRUS_SKTIME_YAHOO")
        .unwrap_or_else(|e| panic!("{e}"));
    let text = std::fs::read_to_string(dir.join("yahoo.csv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("data,label"));
    lines
        .map(|line| {
            let (value, label) = line.split_once(',').unwrap();
            (value.parse::<f64>().unwrap(), label.trim() == "1")
        })
        .unzip()
}

#[test]
fn precision_and_recall_on_the_labelled_yahoo_series() {
    let (y, labels) = yahoo();
    assert_eq!(y.len(), 1_000);
    let period = (2..=60)
        .max_by(|&a, &b| acf(&y, a).total_cmp(&acf(&y, b)))
        .unwrap();
    let scan = scan_with_periods(&y, &[period], None, None, &Sensitivity::default()).unwrap();
    let found: Vec<usize> = scan.anomalies.iter().map(|a| a.index).collect();
    let truth: Vec<usize> = (0..y.len()).filter(|&t| labels[t]).collect();
    let hits = found.iter().filter(|&&t| labels[t]).count();
    let recalled = truth.iter().filter(|t| found.contains(t)).count();
    let precision = hits as f64 / found.len().max(1) as f64;
    let recall = recalled as f64 / truth.len() as f64;
    println!(
        "yahoo (sktime): period {period}; {} labelled, {} reported; precision {precision:.3} \
         ({hits}/{}), recall {recall:.3} ({recalled}/{}); labelled {truth:?}, reported {found:?}",
        truth.len(),
        found.len(),
        found.len(),
        truth.len()
    );
    assert_eq!(period, 12);
    assert!(precision >= 0.9, "precision {precision:.3}");
    assert!(recall >= 0.9, "recall {recall:.3}");
}
