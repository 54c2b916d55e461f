//! The one convention every list endpoint follows.
//!
//! - `limit`: items per page, 1 to 1000 (default 100).
//! - `cursor`: the `next_cursor` of the previous page; opaque. Pages are
//!   keyset pages: an item added or removed between two calls neither repeats
//!   nor hides another.
//! - `sort`: a field name, `-field` for descending; the endpoint says which
//!   fields sort. Ties are broken by the item's id.
//! - filters: any other query parameter `field=value` keeps the items whose
//!   field equals the value; the endpoint says which fields filter. Unknown
//!   parameters are refused (400), so a misspelled filter never silently
//!   returns everything.
//!
//! The answer is `{"items": [...], "next_cursor": "..." | null}`.

use std::cmp::Ordering;

use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use datafusion::dataframe::DataFrame;
use datafusion::prelude::{Expr, ident, lit};
use serde::Serialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::problem::Problem;

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// The paging parameters, as the OpenAPI document shows them.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ListParams {
    /// Items per page, 1 to 1000.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<usize>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// A sortable field, `-field` for descending.
    sort: Option<String>,
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// What a list endpoint allows.
pub struct ListSpec {
    /// The field that identifies an item (the tiebreak).
    pub id: &'static str,
    pub sortable: &'static [&'static str],
    pub filterable: &'static [&'static str],
    pub default_sort: &'static str,
}

/// A list request, checked against nothing yet (see [`ListQuery::page`]).
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub sort: Option<String>,
    pub filters: Vec<(String, String)>,
}

impl<S: Send + Sync> FromRequestParts<S> for ListQuery {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| Problem::bad_request(format!("cannot read the query string: {e}")))?;
        let mut query = ListQuery {
            limit: DEFAULT_LIMIT,
            cursor: None,
            sort: None,
            filters: Vec::new(),
        };
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            Problem::bad_request(format!(
                                "limit must be a whole number from 1 to {MAX_LIMIT}, not `{value}`"
                            ))
                        })?
                }
                "cursor" => query.cursor = Some(value),
                "sort" => query.sort = Some(value),
                _ => query.filters.push((name, value)),
            }
        }
        Ok(query)
    }
}

/// Where the previous page ended: the sort it used, its last sort value and id.
#[derive(Serialize, serde::Deserialize)]
struct Cursor(String, Value, Value);

impl ListQuery {
    /// The sort asked for (or the endpoint's default) as `(sort, field,
    /// descending)`, with the sort and every filter checked against `spec`.
    fn checked<'a>(&'a self, spec: &'a ListSpec) -> Result<(&'a str, &'a str, bool), Problem> {
        let sort = self.sort.as_deref().unwrap_or(spec.default_sort);
        let (field, descending) = match sort.strip_prefix('-') {
            Some(field) => (field, true),
            None => (sort, false),
        };
        if !spec.sortable.contains(&field) {
            return Err(Problem::bad_request(format!(
                "cannot sort by `{field}`; sort by one of: {}",
                spec.sortable.join(", ")
            )));
        }
        for (name, _) in &self.filters {
            if !spec.filterable.contains(&name.as_str()) {
                return Err(Problem::bad_request(format!(
                    "unknown query parameter `{name}`; use limit, cursor, sort{}{}",
                    if spec.filterable.is_empty() {
                        ""
                    } else {
                        " or filter by "
                    },
                    spec.filterable.join(", ")
                )));
            }
        }
        Ok((sort, field, descending))
    }

    /// The request as a scan: for lists read from a table, its filters,
    /// cursor, sort and limit go into the query ([`Scan::apply`]), so that
    /// the scan returns one page and one item more, however large the
    /// table. [`ListQuery::page`] then cuts the page from those rows.
    pub fn scan(&self, spec: &ListSpec) -> Result<Scan, Problem> {
        let (sort, field, descending) = self.checked(spec)?;
        let after = self
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, sort))
            .transpose()?
            .map(|Cursor(_, key, id)| (key, id));
        Ok(Scan {
            filters: self.filters.clone(),
            field: field.to_string(),
            id: spec.id,
            descending,
            after,
            limit: self.limit,
        })
    }

    /// Filters, sorts and cuts `items` into the page asked for.
    pub fn page<T: Serialize>(&self, items: Vec<T>, spec: &ListSpec) -> Result<Page<T>, Problem> {
        let (sort, field, descending) = self.checked(spec)?;
        let after = self
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, sort))
            .transpose()?;
        let mut rows: Vec<(Value, Value, T)> = items
            .into_iter()
            .map(|item| {
                let json = serde_json::to_value(&item).unwrap_or(Value::Null);
                (json[field].clone(), json[spec.id].clone(), item, json)
            })
            .filter(|(.., json)| {
                self.filters
                    .iter()
                    .all(|(name, wanted)| text(&json[name.as_str()]) == *wanted)
            })
            .map(|(key, id, item, _)| (key, id, item))
            .collect();
        let order = |a: (&Value, &Value), b: (&Value, &Value)| {
            let o = compare(a.0, b.0).then_with(|| compare(a.1, b.1));
            if descending { o.reverse() } else { o }
        };
        rows.sort_by(|a, b| order((&a.0, &a.1), (&b.0, &b.1)));
        if let Some(Cursor(_, key, id)) = &after {
            rows.retain(|r| order((&r.0, &r.1), (key, id)) == Ordering::Greater);
        }
        let more = rows.len() > self.limit;
        rows.truncate(self.limit);
        let next_cursor = match rows.last() {
            Some((key, id, _)) if more => {
                let cursor = Cursor(sort.to_string(), key.clone(), id.clone());
                let json = serde_json::to_vec(&cursor).unwrap_or_default();
                Some(URL_SAFE_NO_PAD.encode(json))
            }
            _ => None,
        };
        Ok(Page {
            items: rows.into_iter().map(|(.., item)| item).collect(),
            next_cursor,
        })
    }
}

/// A list request checked and ready to be pushed into a table's scan
/// ([`ListQuery::scan`]). Its order is the pager's: nulls lowest, ties by id.
#[derive(Debug, Clone)]
pub struct Scan {
    filters: Vec<(String, String)>,
    field: String,
    id: &'static str,
    descending: bool,
    after: Option<(Value, Value)>,
    limit: usize,
}

impl Scan {
    /// Adds the filters, the rows after the cursor, the sort and a limit of
    /// one page plus one item to `frame`, whose columns are named as the
    /// items' fields.
    pub fn apply(&self, mut frame: DataFrame) -> datafusion::error::Result<DataFrame> {
        for (name, value) in &self.filters {
            frame = frame.filter(ident(name).eq(lit(value.as_str())))?;
        }
        if let Some((key, id)) = &self.after {
            frame = frame.filter(self.after(key, id))?;
        }
        let ascending = !self.descending;
        frame
            .sort(vec![
                ident(&self.field).sort(ascending, ascending),
                ident(self.id).sort(ascending, ascending),
            ])?
            .limit(0, Some(self.limit + 1))
    }

    /// The rows that come after `(key, id)` in the list's order.
    fn after(&self, key: &Value, id: &Value) -> Expr {
        let (field, id_column) = (ident(&self.field), ident(self.id));
        let key = literal(key);
        let id = literal(id).unwrap_or_else(|| lit(datafusion::scalar::ScalarValue::Null));
        match (key, self.descending) {
            // Ascending, nulls first.
            (Some(key), false) => field
                .clone()
                .gt(key.clone())
                .or(field.eq(key).and(id_column.gt(id))),
            (None, false) => field
                .clone()
                .is_not_null()
                .or(field.is_null().and(id_column.gt(id))),
            // Descending, nulls last.
            (Some(key), true) => field
                .clone()
                .lt(key.clone())
                .or(field.clone().eq(key).and(id_column.lt(id)))
                .or(field.is_null()),
            (None, true) => field.is_null().and(id_column.lt(id)),
        }
    }
}

/// A cursor's JSON value as a literal (`None` for null); the scan's types
/// coerce it to the column's (a date, a timestamp).
fn literal(value: &Value) -> Option<Expr> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(b) => lit(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => lit(i),
            None => lit(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => lit(s.as_str()),
        other => lit(other.to_string()),
    })
}

fn decode_cursor(cursor: &str, sort: &str) -> Result<Cursor, Problem> {
    let invalid = || {
        Problem::bad_request("invalid cursor: pass the `next_cursor` of the previous page as is")
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    if cursor.0 != sort {
        return Err(Problem::bad_request(format!(
            "the cursor belongs to `sort={}`; keep the sort while paging",
            cursor.0
        )));
    }
    Ok(cursor)
}

/// How a field's value reads in a filter: strings as they are, others as JSON.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Null < booleans < numbers < strings; within a kind, the natural order.
fn compare(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            _ => 4,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Clone)]
    struct Item {
        id: String,
        role: &'static str,
        n: u32,
    }

    const SPEC: ListSpec = ListSpec {
        id: "id",
        sortable: &["id", "n"],
        filterable: &["role"],
        default_sort: "id",
    };

    fn query(limit: usize, sort: Option<&str>, filters: &[(&str, &str)]) -> ListQuery {
        ListQuery {
            limit,
            cursor: None,
            sort: sort.map(str::to_string),
            filters: filters
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    fn items() -> Vec<Item> {
        (0..7)
            .map(|i| Item {
                id: format!("k{i}"),
                role: if i % 2 == 0 { "reader" } else { "admin" },
                n: 10 - i % 3,
            })
            .collect()
    }

    fn all_pages(mut q: ListQuery) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let page = q.page(items(), &SPEC).unwrap();
            assert!(page.items.len() <= q.limit);
            seen.extend(page.items.iter().map(|i| i.id.clone()));
            match page.next_cursor {
                Some(c) => q.cursor = Some(c),
                None => return seen,
            }
        }
    }

    #[test]
    fn pages_cover_every_item_once_in_order() {
        let ids = all_pages(query(3, None, &[]));
        assert_eq!(ids, ["k0", "k1", "k2", "k3", "k4", "k5", "k6"]);
        // n descending, ties by id descending.
        let ids = all_pages(query(2, Some("-n"), &[]));
        assert_eq!(ids, ["k6", "k3", "k0", "k4", "k1", "k5", "k2"]);
        let ids = all_pages(query(1, None, &[("role", "admin")]));
        assert_eq!(ids, ["k1", "k3", "k5"]);
    }

    #[test]
    fn bad_sorts_filters_and_cursors_are_refused() {
        let bad = |q: ListQuery| q.page(items(), &SPEC).unwrap_err().detail;
        assert!(bad(query(5, Some("role"), &[])).contains("sort by one of: id, n"));
        assert!(bad(query(5, None, &[("rol", "x")])).contains("`rol`"));
        let mut q = query(5, None, &[]);
        q.cursor = Some("not-a-cursor!".into());
        assert!(bad(q).contains("invalid cursor"));
        let mut q = query(2, None, &[]);
        q.cursor = q.page(items(), &SPEC).unwrap().next_cursor;
        q.sort = Some("-n".into());
        assert!(bad(q).contains("keep the sort"));
    }
}
