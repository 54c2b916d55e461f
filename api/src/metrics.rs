//! `/metrics` in the Prometheus text format (version 0.0.4).
//!
//! A handful of counters and one histogram, kept in memory: requests by route
//! (the route's template, so the label set stays small), method and status;
//! latency by route; problems by kind; SQL queries, rows returned and rows
//! ingested; requests turned away by the rate and concurrency limits.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::problem::ProblemKind;
use crate::state::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct ByLabel {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    problems: BTreeMap<&'static str, u64>,
}

/// The server's counters; one per process, shared by every request.
#[derive(Default)]
pub struct Metrics {
    by_label: Mutex<ByLabel>,
    queries: AtomicU64,
    rows_returned: AtomicU64,
    rows_ingested: AtomicU64,
    in_flight: AtomicU64,
}

impl Metrics {
    /// A SQL query was run.
    pub fn query(&self) {
        self.queries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn rows_returned(&self, rows: usize) {
        self.rows_returned.fetch_add(rows as u64, Ordering::Relaxed);
    }

    pub fn rows_ingested(&self, rows: usize) {
        self.rows_ingested.fetch_add(rows as u64, Ordering::Relaxed);
    }

    fn observe(
        &self,
        route: &str,
        method: &str,
        status: u16,
        elapsed: Duration,
        problem: Option<&'static str>,
    ) {
        let mut by_label = self.by_label.lock().unwrap_or_else(|e| e.into_inner());
        *by_label
            .requests
            .entry((route.to_string(), method.to_string(), status))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        let histogram = by_label.latency.entry(route.to_string()).or_default();
        for (count, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *count += 1;
            }
        }
        histogram.sum += seconds;
        histogram.count += 1;
        if let Some(kind) = problem {
            *by_label.problems.entry(kind).or_default() += 1;
        }
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let by_label = self.by_label.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(
            out,
            "# HELP gyrus_http_requests_total HTTP requests by route template, method and status.\n# TYPE gyrus_http_requests_total counter"
        );
        for ((route, method, status), n) in &by_label.requests {
            let _ = writeln!(
                out,
                "gyrus_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        let _ = writeln!(
            out,
            "# HELP gyrus_http_request_duration_seconds Time to the response's headers, by route template.\n# TYPE gyrus_http_request_duration_seconds histogram"
        );
        for (route, h) in &by_label.latency {
            let route = escape(route);
            for (count, bound) in h.counts.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "gyrus_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "gyrus_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}\ngyrus_http_request_duration_seconds_sum{{route=\"{route}\"}} {}\ngyrus_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count, h.sum, h.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP gyrus_http_errors_total Error responses by problem kind (the last part of the problem's type).\n# TYPE gyrus_http_errors_total counter"
        );
        for (kind, n) in &by_label.problems {
            let _ = writeln!(out, "gyrus_http_errors_total{{kind=\"{kind}\"}} {n}");
        }
        for (name, kind, help, value) in [
            (
                "gyrus_sql_queries_total",
                "counter",
                "SQL queries run over HTTP.",
                &self.queries,
            ),
            (
                "gyrus_rows_returned_total",
                "counter",
                "Result rows sent over HTTP.",
                &self.rows_returned,
            ),
            (
                "gyrus_rows_ingested_total",
                "counter",
                "Rows committed by HTTP ingest (replays not counted).",
                &self.rows_ingested,
            ),
            (
                "gyrus_http_requests_in_flight",
                "gauge",
                "Requests being handled now.",
                &self.in_flight,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The method as a label: the standard ones by name, anything else `other`,
/// so that made-up methods cannot mint series.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Counts a request as in flight until dropped: a request whose client went
/// away (its future dropped mid-way) still leaves the gauge.
struct InFlight(Arc<Metrics>);

impl InFlight {
    fn new(metrics: &Arc<Metrics>) -> Self {
        metrics.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(metrics.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts every request: route, status, latency and the problem kind if any.
/// Runs outside the panic guard, so a panicking handler counts as its 500.
pub async fn middleware(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = crate::request_id::route(&request);
    let method = method_label(request.method());
    let started = std::time::Instant::now();
    let in_flight = InFlight::new(&state.metrics);
    let response = next.run(request).await;
    drop(in_flight);
    let problem = response.extensions().get::<ProblemKind>().map(|k| k.0);
    state.metrics.observe(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
        problem,
    );
    response
}

/// `GET /metrics`.
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String)))]
pub async fn export(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render() + &state.admission.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("/api/v1/sql", "POST", 200, Duration::from_millis(3), None);
        m.observe(
            "/api/v1/sql",
            "POST",
            422,
            Duration::from_millis(30),
            Some("invalid-query"),
        );
        m.rows_returned(7);
        let text = m.render();
        assert!(text.contains(
            "gyrus_http_requests_total{route=\"/api/v1/sql\",method=\"POST\",status=\"422\"} 1"
        ));
        assert!(text.contains(
            "gyrus_http_request_duration_seconds_bucket{route=\"/api/v1/sql\",le=\"0.005\"} 1"
        ));
        assert!(text.contains(
            "gyrus_http_request_duration_seconds_bucket{route=\"/api/v1/sql\",le=\"0.05\"} 2"
        ));
        assert!(text.contains("gyrus_http_errors_total{kind=\"invalid-query\"} 1"));
        assert!(text.contains("gyrus_rows_returned_total 7"));
    }
}
