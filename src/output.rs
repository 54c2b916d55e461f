//! Printing query results as a table, CSV or JSON.

use std::io::Write;

use anyhow::Context as _;
use gyrus_engine::datafusion::arrow::array::RecordBatch;
use gyrus_engine::datafusion::arrow::csv::WriterBuilder;
use gyrus_engine::datafusion::arrow::json::ArrayWriter;
use gyrus_engine::datafusion::arrow::util::pretty::pretty_format_batches;

use crate::cli::OutputFormat;

pub fn print(
    batches: &[RecordBatch],
    format: OutputFormat,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => {
            let table = pretty_format_batches(batches).context("cannot format the result")?;
            writeln!(out, "{table}")?;
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            writeln!(out, "{rows} row{}", if rows == 1 { "" } else { "s" })?;
        }
        OutputFormat::Csv => {
            let mut writer = WriterBuilder::new().with_header(true).build(&mut *out);
            for batch in batches {
                writer.write(batch).context("cannot write CSV")?;
            }
        }
        OutputFormat::Json => {
            let mut writer = ArrayWriter::new(&mut *out);
            let refs: Vec<&RecordBatch> = batches.iter().collect();
            writer.write_batches(&refs).context("cannot write JSON")?;
            writer.finish().context("cannot write JSON")?;
            writeln!(out)?;
        }
    }
    Ok(())
}
