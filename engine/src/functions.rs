//! Scalar functions whose output or work can be far larger than their input,
//! bounded by what their arguments ask for before they run.
//!
//! A memory pool only sees what operators reserve; a scalar function
//! allocates its answer directly (`repeat('x', 1000000000)` is a gigabyte,
//! also while constant folding at planning time), and a function such as
//! `levenshtein` computes for as long as its inputs are long, without an
//! await where a deadline could stop it. Each function here is wrapped so
//! that its arguments are measured first and a call that would produce more
//! than [`MAX_OUTPUT_BYTES`] (or compute more than [`MAX_EDIT_CELLS`]) is an
//! error naming the bound; every wrapped function's answer is also checked
//! after the fact, which stops chains of smaller amplifications.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::compute::kernels::length::length;
use datafusion::arrow::datatypes::{DataType, FieldRef, TimeUnit};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, LogicalPlan, Operator, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::logical_expr_common::interval_arithmetic::Interval;
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// The most one call of a bounded function may produce, over its rows.
pub const MAX_OUTPUT_BYTES: i128 = 256 << 20;
/// The most cells (characters × characters) one call of an edit distance
/// may compute over its rows: about a second of work.
pub const MAX_EDIT_CELLS: i128 = 300_000_000;

/// What to measure before a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Guard {
    /// `repeat(text, n)`: len(text) × n bytes.
    Repeat,
    /// `lpad/rpad(text, n [, fill])`: up to 4 × n bytes (n characters).
    Pad,
    /// `range/generate_series(start, stop [, step])`: (stop - start) / step values.
    Series,
    /// `array_repeat(value, n)`: n values.
    ArrayRepeat,
    /// `array_resize(array, n [, value])`: n values.
    ArrayResize,
    /// `levenshtein(a, b)`: len(a) × len(b) cells of work.
    EditDistance,
    /// Only the answer is checked.
    Output,
}

const GUARDED: &[(&str, Guard)] = &[
    ("repeat", Guard::Repeat),
    ("lpad", Guard::Pad),
    ("rpad", Guard::Pad),
    ("range", Guard::Series),
    ("generate_series", Guard::Series),
    ("array_repeat", Guard::ArrayRepeat),
    ("array_resize", Guard::ArrayResize),
    ("levenshtein", Guard::EditDistance),
    ("replace", Guard::Output),
    ("regexp_replace", Guard::Output),
    ("translate", Guard::Output),
    ("overlay", Guard::Output),
    ("concat", Guard::Output),
    ("concat_ws", Guard::Output),
    ("array_concat", Guard::Output),
    ("array_append", Guard::Output),
    ("array_prepend", Guard::Output),
    ("flatten", Guard::Output),
    ("string_to_array", Guard::Output),
    ("encode", Guard::Output),
    ("to_hex", Guard::Output),
];

/// A function with its guard.
#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: ScalarUDF,
    guard: Guard,
}

/// The bounded versions of the functions a session starts with, made once.
static BOUNDED: LazyLock<Vec<ScalarUDF>> = LazyLock::new(|| {
    let ctx = SessionContext::new();
    let state = ctx.state();
    GUARDED
        .iter()
        .filter_map(|(name, guard)| {
            let inner = state.scalar_functions().get(*name)?.as_ref().clone();
            Some(ScalarUDF::new_from_impl(Bounded {
                inner,
                guard: *guard,
            }))
        })
        .collect()
});

/// Replaces the session's amplifying functions by their bounded versions,
/// and bounds the `||` operator's answers the same way.
pub fn register_bounded(ctx: &SessionContext) {
    for udf in BOUNDED.iter() {
        ctx.register_udf(udf.clone());
    }
    ctx.add_analyzer_rule(Arc::new(BoundConcatenation));
}

/// `||` is an operator, not a function: none of the wrappers above sees it,
/// and `repeat('x', 150000000) || repeat('x', 150000000)` makes 300 MB. This
/// rule (run after type coercion) wraps each `a || b` in [`OperatorBound`],
/// which passes its argument through if it is within [`MAX_OUTPUT_BYTES`]:
/// a chain of `||` stops at the first step past the bound, and a constant
/// one is refused while it is folded.
#[derive(Debug)]
struct BoundConcatenation;

static OPERATOR_BOUND: LazyLock<ScalarUDF> =
    LazyLock::new(|| ScalarUDF::new_from_impl(OperatorBound::default()));

impl AnalyzerRule for BoundConcatenation {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            plan.map_expressions(|expr| {
                expr.transform_up(|e| match e {
                    Expr::BinaryExpr(ref b) if b.op == Operator::StringConcat => {
                        Ok(Transformed::yes(OPERATOR_BOUND.call(vec![e])))
                    }
                    // Analysed twice: wrapped once.
                    Expr::ScalarFunction(ref f)
                        if f.func.name() == OPERATOR_BOUND_NAME
                            && matches!(&f.args[..], [Expr::ScalarFunction(inner)] if inner.func.name() == OPERATOR_BOUND_NAME) =>
                    {
                        Ok(Transformed::yes(f.args[0].clone()))
                    }
                    other => Ok(Transformed::no(other)),
                })
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "gyrus_bound_concatenation"
    }
}

const OPERATOR_BOUND_NAME: &str = "gyrus_operator_bound";

/// The identity, refusing a value over [`MAX_OUTPUT_BYTES`]; shown (and
/// named in results) as the expression it wraps.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OperatorBound {
    signature: Signature,
}

impl Default for OperatorBound {
    fn default() -> Self {
        OperatorBound {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for OperatorBound {
    fn name(&self) -> &str {
        OPERATOR_BOUND_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args
            .first()
            .map(|a| a.schema_name().to_string())
            .unwrap_or_default())
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        arg_types
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Plan("one argument".into()))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        args.arg_fields
            .first()
            .cloned()
            .ok_or_else(|| DataFusionError::Plan("one argument".into()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let value = args
            .args
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Plan("one argument".into()))?;
        within_output_bound("||", &value)?;
        Ok(value)
    }
}

/// The bytes of the literal values in `expr`.
fn literal_bytes(expr: &Expr) -> i128 {
    let mut total = 0i128;
    // The closure never fails, so neither does the walk.
    let _ = expr.apply(|e| {
        if let Expr::Literal(value, _) = e {
            total += value.size() as i128;
        }
        Ok(TreeNodeRecursion::Continue)
    });
    total
}

/// Refuses an answer of `name` larger than [`MAX_OUTPUT_BYTES`].
fn within_output_bound(name: &str, answer: &ColumnarValue) -> Result<()> {
    let bytes = match answer {
        ColumnarValue::Array(array) => array.get_array_memory_size(),
        ColumnarValue::Scalar(scalar) => scalar.size(),
    };
    if bytes as i128 > MAX_OUTPUT_BYTES {
        return Err(refuse(format!("{name} produced {} MiB", bytes >> 20)));
    }
    Ok(())
}

fn refuse(what: String) -> DataFusionError {
    DataFusionError::Execution(format!(
        "{what}, more than the {} MiB functions may produce in one call; ask for less",
        MAX_OUTPUT_BYTES >> 20
    ))
}

fn refuse_work(what: String) -> DataFusionError {
    DataFusionError::Execution(format!(
        "{what}, more than the {MAX_EDIT_CELLS} cells functions may compute in one call; compare shorter strings"
    ))
}

/// An argument's values as i64 (integers, dates and timestamps in their
/// units); `None` for a type that is not numeric or a null.
enum Ints {
    Scalar(Option<i64>),
    Array(Int64Array),
}

impl Ints {
    fn of(value: &ColumnarValue) -> Option<Ints> {
        match value {
            ColumnarValue::Scalar(scalar) => {
                let array = scalar.to_array().ok()?;
                let ints = to_i64(&array)?;
                Some(Ints::Scalar(ints.is_valid(0).then(|| ints.value(0))))
            }
            ColumnarValue::Array(array) => Some(Ints::Array(to_i64(array)?)),
        }
    }

    fn get(&self, row: usize) -> Option<i64> {
        match self {
            Ints::Scalar(v) => *v,
            Ints::Array(a) => (row < a.len() && a.is_valid(row)).then(|| a.value(row)),
        }
    }
}

fn to_i64(array: &ArrayRef) -> Option<Int64Array> {
    let array = match array.data_type() {
        DataType::Date32 | DataType::Date64 => {
            cast(array, &DataType::Timestamp(TimeUnit::Nanosecond, None)).ok()?
        }
        _ => array.clone(),
    };
    let ints = match array.data_type() {
        t if t.is_integer() || matches!(t, DataType::Timestamp(..)) => {
            cast(&array, &DataType::Int64).ok()?
        }
        _ => return None,
    };
    Some(ints.as_primitive().clone())
}

/// Byte lengths of a string argument (0 for other types and nulls).
fn byte_lengths(value: &ColumnarValue) -> Ints {
    let len = |array: &ArrayRef| -> Option<Int64Array> {
        let lengths = length(array).ok()?;
        to_i64(&lengths)
    };
    match value {
        ColumnarValue::Scalar(scalar) => Ints::Scalar(match scalar {
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)) => Some(s.len() as i64),
            ScalarValue::Binary(Some(b))
            | ScalarValue::LargeBinary(Some(b))
            | ScalarValue::BinaryView(Some(b)) => Some(b.len() as i64),
            _ => Some(0),
        }),
        ColumnarValue::Array(array) => len(array).map_or(Ints::Scalar(Some(0)), Ints::Array),
    }
}

/// Nanoseconds of an interval step (months counted as 31 days: the count
/// of values is over- rather than underestimated by it, which is safe).
fn interval_nanos(value: &ColumnarValue) -> Option<i128> {
    let ColumnarValue::Scalar(scalar) = value else {
        return None;
    };
    const DAY: i128 = 86_400_000_000_000;
    match scalar {
        ScalarValue::IntervalMonthDayNano(Some(v)) => Some(
            i128::from(v.months) * 28 * DAY + i128::from(v.days) * DAY + i128::from(v.nanoseconds),
        ),
        ScalarValue::IntervalDayTime(Some(v)) => {
            Some(i128::from(v.days) * DAY + i128::from(v.milliseconds) * 1_000_000)
        }
        ScalarValue::IntervalYearMonth(Some(months)) => Some(i128::from(*months) * 28 * DAY),
        _ => None,
    }
}

/// Nanoseconds per unit of a series' start and stop.
fn unit_nanos(data_type: &DataType) -> i128 {
    match data_type {
        DataType::Date32 | DataType::Date64 => 1, // cast to nanoseconds by `to_i64`
        DataType::Timestamp(unit, _) => match unit {
            TimeUnit::Second => 1_000_000_000,
            TimeUnit::Millisecond => 1_000_000,
            TimeUnit::Microsecond => 1_000,
            TimeUnit::Nanosecond => 1,
        },
        _ => 1,
    }
}

impl Bounded {
    /// Refuses a call whose arguments ask for too much.
    fn check(&self, args: &ScalarFunctionArgs) -> Result<()> {
        let rows = args.number_rows.max(1);
        let name = self.inner.name();
        let arg = |i: usize| args.args.get(i);
        let total = |per_row: &dyn Fn(usize) -> i128| -> i128 {
            (0..rows)
                .map(per_row)
                .fold(0i128, |sum, v| sum.saturating_add(v.max(0)))
        };
        match self.guard {
            Guard::Repeat => {
                let (Some(text), Some(n)) = (arg(0), arg(1).and_then(Ints::of)) else {
                    return Ok(());
                };
                let lengths = byte_lengths(text);
                let bytes = total(&|row| {
                    i128::from(lengths.get(row).unwrap_or(0)) * i128::from(n.get(row).unwrap_or(0))
                });
                if bytes > MAX_OUTPUT_BYTES {
                    return Err(refuse(format!("{name} would produce {} MiB", bytes >> 20)));
                }
            }
            Guard::Pad => {
                let Some(n) = arg(1).and_then(Ints::of) else {
                    return Ok(());
                };
                let bytes = total(&|row| 4 * i128::from(n.get(row).unwrap_or(0)));
                if bytes > MAX_OUTPUT_BYTES {
                    return Err(refuse(format!(
                        "{name} would produce up to {} MiB",
                        bytes >> 20
                    )));
                }
            }
            Guard::Series => {
                let (Some(start), Some(stop)) = (arg(0), arg(1)) else {
                    // range(n): 0..n
                    if let Some(stop) = arg(0).and_then(Ints::of) {
                        let values = total(&|row| i128::from(stop.get(row).unwrap_or(0)));
                        return series_bound(name, values);
                    }
                    return Ok(());
                };
                let unit = unit_nanos(&start.data_type());
                let (Some(from), Some(to)) = (Ints::of(start), Ints::of(stop)) else {
                    return Ok(());
                };
                let step: Box<dyn Fn(usize) -> i128> = match arg(2) {
                    None => {
                        // Integers step by 1; dates and timestamps need a step.
                        Box::new(|_| 1)
                    }
                    Some(step) => match interval_nanos(step) {
                        Some(nanos) => Box::new(move |_| (nanos / unit).max(1)),
                        None => match Ints::of(step) {
                            Some(ints) => Box::new(move |row| {
                                i128::from(ints.get(row).unwrap_or(1)).abs().max(1)
                            }),
                            None => return Ok(()),
                        },
                    },
                };
                let values = total(&|row| {
                    let (Some(a), Some(b)) = (from.get(row), to.get(row)) else {
                        return 0;
                    };
                    (i128::from(b) - i128::from(a)).abs() / step(row) + 1
                });
                series_bound(name, values)?;
            }
            Guard::ArrayRepeat | Guard::ArrayResize => {
                let Some(n) = arg(1).and_then(Ints::of) else {
                    return Ok(());
                };
                let values = total(&|row| i128::from(n.get(row).unwrap_or(0)));
                series_bound(name, values)?;
            }
            Guard::EditDistance => {
                let (Some(a), Some(b)) = (arg(0), arg(1)) else {
                    return Ok(());
                };
                let (a, b) = (byte_lengths(a), byte_lengths(b));
                let cells = total(&|row| {
                    i128::from(a.get(row).unwrap_or(0)) * i128::from(b.get(row).unwrap_or(0))
                });
                if cells > MAX_EDIT_CELLS {
                    return Err(refuse_work(format!(
                        "{name} over these strings would compute {cells} cells"
                    )));
                }
            }
            Guard::Output => {}
        }
        Ok(())
    }
}

/// Lists of more than this many values (8 bytes each) pass the output bound.
fn series_bound(name: &str, values: i128) -> Result<()> {
    if values.saturating_mul(8) > MAX_OUTPUT_BYTES {
        return Err(refuse(format!("{name} would produce {values} values")));
    }
    Ok(())
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let inner = self.inner.inner().with_updated_config(config)?;
        Some(ScalarUDF::new_from_impl(Bounded {
            inner,
            guard: self.guard,
        }))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args)?;
        let answer = self.inner.invoke_with_args(args)?;
        within_output_bound(self.inner.name(), &answer)?;
        Ok(answer)
    }

    /// Some functions fold constant arguments themselves while planning
    /// (`concat` of two literals becomes one literal, never invoked): what
    /// they fold to is held to the same bound as what they return.
    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        let result = self.inner.inner().simplify(args, info)?;
        if let ExprSimplifyResult::Simplified(expr) = &result {
            let bytes = literal_bytes(expr);
            if bytes > MAX_OUTPUT_BYTES {
                return Err(refuse(format!(
                    "{} folds to {} MiB",
                    self.inner.name(),
                    bytes >> 20
                )));
            }
        }
        Ok(result)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.inner().conditional_arguments(args)
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(ctx: &SessionContext, sql: &str) -> Result<()> {
        ctx.sql(sql).await?.collect().await.map(|_| ())
    }

    #[tokio::test]
    async fn amplifiers_are_refused_by_what_they_would_make() {
        let ctx = SessionContext::new();
        register_bounded(&ctx);
        for sql in [
            "SELECT length(repeat('x', 150000000) || repeat('x', 150000000))",
            "SELECT length(repeat(a, 150000000) || repeat(a, 150000000)) FROM (VALUES ('x'), ('y')) AS t(a)",
            "SELECT length(repeat('x', 1000000000))",
            "SELECT repeat(repeat('x', 1000), 1000000)",
            "SELECT lpad('x', 1000000000)",
            "SELECT rpad('x', 1000000000, 'ab')",
            "SELECT cardinality(range(60000000))",
            "SELECT cardinality(generate_series(1, 60000000))",
            "SELECT cardinality(range(0, 600000000, 10))",
            "SELECT cardinality(range(TIMESTAMP '2000-01-01', TIMESTAMP '2030-01-01', INTERVAL '1 second'))",
            "SELECT cardinality(array_repeat(1, 100000000))",
            "SELECT cardinality(array_resize([1], 100000000, 0))",
            "SELECT levenshtein(repeat('a', 144000), repeat('b', 144000))",
            // Folded while planning, by concat's own simplification.
            "SELECT length(concat(repeat('x', 150000000), repeat('y', 150000000)))",
        ] {
            let err = run(&ctx, sql).await.unwrap_err();
            assert!(err.to_string().contains("functions may"), "{sql}: {err}");
        }
        // Ordinary calls answer.
        for sql in [
            "SELECT repeat('ab', 1000), lpad('7', 5, '0'), rpad('x', 10)",
            "SELECT range(10), generate_series(1, 100, 7), array_repeat('a', 3)",
            "SELECT generate_series(DATE '2026-01-01', DATE '2026-12-31', INTERVAL '1 day')",
            "SELECT levenshtein('kitten', 'sitting')",
            "SELECT replace('aaa', 'a', 'bb'), concat('a', 'b', 'c')",
        ] {
            run(&ctx, sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        let batches = ctx
            .sql("SELECT levenshtein('kitten', 'sitting') AS d, repeat('ab', 3) AS r")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("| 3 | ababab |"), "{text}");
    }
}
