//! The optimizer rule that answers aggregates from rollups.
//!
//! It runs first, on the plan as SQL made it, and looks for an `Aggregate`
//! over filters over a scan of a table that has usable rollups. The first
//! (smallest) rollup that covers the query replaces the scan when
//!
//! - every filter and group key uses only the rollup's dimensions (any
//!   deterministic expression of them, no subqueries);
//! - every aggregate is one of: `sum` of a measure, or of a `CASE` whose
//!   conditions use dimensions and whose branches are measures, zero or
//!   NULL; `min`/`max` of a measure; `count(*)`, `count` of a measure;
//!   `avg` of a floating measure or of an integer one (as SQL casts it);
//!   `count(DISTINCT …)`, `min` and `max` of an expression of dimensions;
//!   each with a `FILTER` over dimensions if it has one.
//!
//! The aggregate is then computed over the rollup's partial sums (`sum` of
//! `sum_spend`, `sum` of `rows`, …) and cast back to the type the original
//! aggregate has, under the original names, so the operators above it (HAVING,
//! ORDER BY, LIMIT, window functions) see the same schema. Anything else is
//! left to the base table. `EXPLAIN` shows the rollup's scan under an alias of
//! the table's name.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, Result as DfResult, ScalarValue, TableReference};
use datafusion::datasource::{provider_as_source, source_as_provider};
use datafusion::functions::expr_fn::{coalesce, nullif};
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::expr::{AggregateFunction, Case};
use datafusion::logical_expr::{
    Aggregate, AggregateUDF, Expr, ExprSchemable, LogicalPlan, LogicalPlanBuilder, Projection,
    cast, lit, when,
};
use datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use super::{ROWS, Rollup, RollupDef};

/// Answers aggregates over a table from its rollups where they cover them.
#[derive(Debug)]
pub struct RollupRule {
    rollups: Vec<Rollup>,
}

impl RollupRule {
    /// The rule over the rollups of one snapshot (those agreeing with it).
    pub fn new(rollups: Vec<Rollup>) -> Self {
        RollupRule { rollups }
    }
}

impl OptimizerRule for RollupRule {
    fn name(&self) -> &str {
        "gyrus_rollups"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> DfResult<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = &plan else {
            return Ok(Transformed::no(plan));
        };
        let Some(source) = Source::find(&aggregate.input) else {
            return Ok(Transformed::no(plan));
        };
        let candidates = self
            .rollups
            .iter()
            .filter(|r| same_provider(&r.base, &source.provider));
        for rollup in candidates {
            if let Some(rewritten) = rewrite(aggregate, &source, rollup)? {
                return Ok(Transformed::yes(rewritten));
            }
        }
        Ok(Transformed::no(plan))
    }
}

fn same_provider(a: &Arc<dyn TableProvider>, b: &Arc<dyn TableProvider>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

/// What an aggregate reads: filters over one table's unprojected scan.
struct Source<'a> {
    /// Predicates, from the aggregate down.
    filters: Vec<&'a Expr>,
    /// What the columns above the scan are qualified with.
    qualifier: TableReference,
    provider: Arc<dyn TableProvider>,
}

impl<'a> Source<'a> {
    fn find(mut node: &'a LogicalPlan) -> Option<Self> {
        let mut filters = Vec::new();
        let mut alias = None;
        loop {
            match node {
                LogicalPlan::Filter(filter) if alias.is_none() => {
                    filters.push(&filter.predicate);
                    node = &filter.input;
                }
                LogicalPlan::SubqueryAlias(a) if alias.is_none() => {
                    alias = Some(a.alias.clone());
                    node = &a.input;
                }
                LogicalPlan::TableScan(scan)
                    if scan.projection.is_none()
                        && scan.filters.is_empty()
                        && scan.fetch.is_none() =>
                {
                    return Some(Source {
                        filters,
                        qualifier: alias.unwrap_or_else(|| scan.table_name.clone()),
                        provider: source_as_provider(&scan.source).ok()?,
                    });
                }
                _ => return None,
            }
        }
    }
}

/// The aggregate answered from `rollup`, or `None` when it does not cover it.
fn rewrite(
    aggregate: &Aggregate,
    source: &Source<'_>,
    rollup: &Rollup,
) -> DfResult<Option<LogicalPlan>> {
    let def = rollup.def();
    if !source.filters.iter().all(|f| of_dims(def, f))
        || !aggregate.group_expr.iter().all(|e| of_dims(def, e))
        || aggregate
            .group_expr
            .iter()
            .any(|e| matches!(e, Expr::GroupingSet(_)))
    {
        return Ok(None);
    }
    let mut input =
        LogicalPlanBuilder::scan(def.name, provider_as_source(rollup.provider.clone()), None)?
            .alias(source.qualifier.clone())?;
    for predicate in source.filters.iter().rev() {
        input = input.filter((*predicate).clone())?;
    }
    let input = input.build()?;
    let mut translator = Translator {
        def,
        qualifier: &source.qualifier,
        schema: input.schema().as_ref(),
        aggregates: Vec::new(),
    };
    let mut answers = Vec::with_capacity(aggregate.aggr_expr.len());
    for expr in &aggregate.aggr_expr {
        match translator.translate(expr)? {
            Some(answer) => answers.push(answer),
            None => return Ok(None),
        }
    }
    let aggregates = translator.aggregates;
    let from_rollup =
        Aggregate::try_new(Arc::new(input), aggregate.group_expr.clone(), aggregates)?;
    let schema = from_rollup.schema.clone();
    let groups = aggregate.group_expr.len();
    let mut outputs = Vec::with_capacity(aggregate.schema.fields().len());
    for (i, (qualifier, field)) in aggregate.schema.iter().enumerate() {
        let expr = match i.checked_sub(groups) {
            None => {
                let (q, f) = schema.qualified_field(i);
                Expr::Column(Column::new(q.cloned(), f.name()))
            }
            Some(a) => answers[a].clone(),
        };
        let expr = match expr.get_type(&schema)? {
            t if &t == field.data_type() => expr,
            _ => cast(expr, field.data_type().clone()),
        };
        outputs.push(expr.alias_qualified(qualifier.cloned(), field.name()));
    }
    let projection = Projection::try_new(outputs, Arc::new(LogicalPlan::Aggregate(from_rollup)))?;
    Ok(Some(LogicalPlan::Projection(projection)))
}

/// Whether `expr` is a deterministic expression of the rollup's dimensions.
fn of_dims(def: &RollupDef, expr: &Expr) -> bool {
    !expr.is_volatile()
        && !has_subquery(expr)
        && expr.column_refs().iter().all(|c| def.is_dim(&c.name))
}

fn has_subquery(expr: &Expr) -> bool {
    expr.exists(|e| {
        Ok(matches!(
            e,
            Expr::ScalarSubquery(_)
                | Expr::InSubquery(_)
                | Expr::Exists(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_)
        ))
    })
    .unwrap_or(true)
}

/// Turns aggregates over the table into aggregates over the rollup.
struct Translator<'a> {
    def: &'static RollupDef,
    qualifier: &'a TableReference,
    /// The schema of the rollup's scan under the table's qualifier.
    schema: &'a DFSchema,
    /// The aggregates over the rollup, named `__gyrus_rollup_<n>`.
    aggregates: Vec<Expr>,
}

impl Translator<'_> {
    /// A rollup column as the rewritten plan sees it.
    fn column(&self, name: &str) -> Expr {
        Expr::Column(Column::new(Some(self.qualifier.clone()), name))
    }

    /// Adds an aggregate over the rollup; returns its output column.
    fn add(&mut self, aggregate: Expr) -> Expr {
        let name = format!("__gyrus_rollup_{}", self.aggregates.len());
        self.aggregates.push(aggregate.alias(&name));
        Expr::Column(Column::new_unqualified(name))
    }

    fn base_type(&self, column: &str) -> Option<DataType> {
        self.def
            .base
            .schema()
            .field_with_name(column)
            .ok()
            .map(|f| f.data_type().clone())
    }

    /// What the aggregate `expr` over the table is in terms of aggregates
    /// over the rollup, or `None` when the rollup cannot answer it.
    fn translate(&mut self, expr: &Expr) -> DfResult<Option<Expr>> {
        let expr = match expr {
            Expr::Alias(alias) => alias.expr.as_ref(),
            expr => expr,
        };
        let Expr::AggregateFunction(function) = expr else {
            return Ok(None);
        };
        let params = &function.params;
        let [arg] = params.args.as_slice() else {
            return Ok(None);
        };
        if !params.order_by.is_empty() {
            return Ok(None);
        }
        let filter = match &params.filter {
            Some(f) if of_dims(self.def, f) => Some(f.clone()),
            Some(_) => return Ok(None),
            None => None,
        };
        let over = |func: Arc<AggregateUDF>, arg: Expr, distinct: bool| {
            Expr::AggregateFunction(AggregateFunction::new_udf(
                func,
                vec![arg],
                distinct,
                filter.clone(),
                vec![],
                None,
            ))
        };
        let name = function.func.name();
        if of_dims(self.def, arg) {
            // The rollup has the same values of its dimensions, fewer times.
            return Ok(match (name, params.distinct) {
                ("min" | "max", _) | ("count", true) => {
                    Some(self.add(over(function.func.clone(), arg.clone(), params.distinct)))
                }
                ("count", false) => {
                    let rows = self.column(ROWS);
                    let counted = match arg {
                        Expr::Literal(value, _) if !value.is_null() => rows,
                        _ => when(arg.clone().is_not_null(), rows).otherwise(lit(0i64))?,
                    };
                    let total = self.add(over(sum_udaf(), counted, false));
                    Some(coalesce(vec![total, lit(0i64)]))
                }
                _ => None,
            });
        }
        if params.distinct {
            return Ok(None);
        }
        let measure = match arg {
            Expr::Column(c) if self.def.is_measure(&c.name) => Some(c.name.as_str()),
            _ => None,
        };
        Ok(match (name, measure) {
            ("sum", _) => self
                .linear(arg)?
                .map(|terms| self.add(over(sum_udaf(), terms, false))),
            ("min" | "max", Some(m)) => {
                let column = self.column(&RollupDef::column(name, m));
                Some(self.add(over(function.func.clone(), column, false)))
            }
            ("count", Some(m)) => {
                let column = self.column(&self.def.count_column(m));
                let total = self.add(over(sum_udaf(), column, false));
                Some(coalesce(vec![total, lit(0i64)]))
            }
            ("avg", _) => {
                // avg of a float measure, or of an integer one cast to float
                // (as type coercion writes it): sum / count in floating point.
                let m = match arg {
                    Expr::Column(c)
                        if measure.is_some()
                            && self.base_type(&c.name) == Some(DataType::Float64) =>
                    {
                        c.name.as_str()
                    }
                    Expr::Cast(c) if c.field.data_type() == &DataType::Float64 => match c
                        .expr
                        .as_ref()
                    {
                        Expr::Column(inner)
                            if self.def.is_measure(&inner.name)
                                && self.base_type(&inner.name).is_some_and(|t| t.is_integer()) =>
                        {
                            inner.name.as_str()
                        }
                        _ => return Ok(None),
                    },
                    _ => return Ok(None),
                };
                let total = self.add(over(
                    sum_udaf(),
                    self.column(&RollupDef::column("sum", m)),
                    false,
                ));
                let n = self.add(over(
                    sum_udaf(),
                    self.column(&self.def.count_column(m)),
                    false,
                ));
                Some(cast(total, DataType::Float64) / cast(nullif(n, lit(0i64)), DataType::Float64))
            }
            _ => None,
        })
    }

    /// The per-rollup-row terms whose sum is the sum of `expr` over the
    /// table: a measure becomes its `sum_` column; a `CASE` choosing by
    /// dimensions between measures, zero and NULL chooses between their sums.
    fn linear(&self, expr: &Expr) -> DfResult<Option<Expr>> {
        match expr {
            Expr::Column(c) if self.def.is_measure(&c.name) => {
                Ok(Some(self.column(&RollupDef::column("sum", &c.name))))
            }
            Expr::Case(case) if case.expr.is_none() => {
                let mut branches = Vec::new();
                for (condition, then) in &case.when_then_expr {
                    if !of_dims(self.def, condition) {
                        return Ok(None);
                    }
                    branches.push(then.as_ref());
                }
                branches.extend(case.else_expr.as_deref());
                // Every branch that is not a constant is a sum of one type.
                let mut target = None;
                for branch in &branches {
                    if constant(branch).is_some() {
                        continue;
                    }
                    let Some(term) = self.linear(branch)? else {
                        return Ok(None);
                    };
                    let t = term.get_type(self.schema)?;
                    match &target {
                        None => target = Some(t),
                        Some(known) if *known == t => {}
                        Some(_) => return Ok(None),
                    }
                }
                let Some(target) = target else {
                    return Ok(None);
                };
                let branch = |e: &Expr| -> DfResult<Option<Box<Expr>>> {
                    Ok(match constant(e) {
                        Some(Constant::Null) => Some(Box::new(Expr::Literal(
                            ScalarValue::try_from(&target)?,
                            None,
                        ))),
                        Some(Constant::Zero) => Some(Box::new(Expr::Literal(
                            ScalarValue::new_zero(&target)?,
                            None,
                        ))),
                        None => self.linear(e)?.map(Box::new),
                    })
                };
                let mut when_then = Vec::new();
                for (condition, then) in &case.when_then_expr {
                    let Some(then) = branch(then)? else {
                        return Ok(None);
                    };
                    when_then.push((condition.clone(), then));
                }
                let otherwise = match &case.else_expr {
                    Some(e) => match branch(e)? {
                        Some(e) => Some(e),
                        None => return Ok(None),
                    },
                    None => None,
                };
                Ok(Some(Expr::Case(Case::new(None, when_then, otherwise))))
            }
            _ => Ok(None),
        }
    }
}

enum Constant {
    Null,
    Zero,
}

/// Whether `expr` is a NULL or zero constant (possibly cast, as type
/// coercion writes `ELSE 0`): one that adds nothing to a sum.
fn constant(expr: &Expr) -> Option<Constant> {
    match expr {
        Expr::Literal(value, _) if value.is_null() => Some(Constant::Null),
        Expr::Literal(value, _) => {
            let zero = ScalarValue::new_zero(&value.data_type()).ok()?;
            (*value == zero).then_some(Constant::Zero)
        }
        Expr::Cast(c) => constant(&c.expr),
        Expr::TryCast(c) => constant(&c.expr),
        _ => None,
    }
}
