//! Arrow IPC messages from outside (an upload in the streaming format, a
//! Flight DoPut), checked before arrow's reader decodes them. arrow-ipc 59
//! trusts what a message's header says and panics where it is wrong; each
//! of these was found by fuzzing (`fuzz/regressions/upload/`,
//! `fuzz/regressions/flight_stream/`):
//!
//! - a buffer whose offset and length lie outside the message's body;
//! - a schema with a type, width or unit arrow does not know (type NONE, a
//!   7-bit integer, a nested type without children), or no list of fields;
//! - a column claiming more rows than its buffers hold: a validity bitmap
//!   of 1 byte for 4,098 rows, an offsets buffer whose length is not a
//!   whole number of offsets.
//!
//! So a stream is checked message by message with a [`StreamCheck`], which
//! keeps the schema's columns and checks every record batch's buffers
//! against what each column needs. Uploads are flat tables: only flat
//! columns of the types arrow can read are let through, and compressed
//! buffers (which state their own decompressed size) are refused.
//!
//! ```
//! use gyrus_engine::ipc::StreamCheck;
//! // Eight bytes of garbage are not a message.
//! assert!(StreamCheck::default().check_message(&[1, 2, 3, 4, 5, 6, 7, 8], 0).is_err());
//! ```

use std::collections::{HashMap, VecDeque};

use datafusion::arrow::ipc::{self, Endianness, Field, Message, RecordBatch, Type};

/// What the buffers of one flat column must hold, per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// Type Null: no buffers.
    Null,
    /// Validity, then one bit per row (Bool).
    Bits,
    /// Validity, then this many bytes per row.
    Fixed(u64),
    /// Validity, offsets of this many bytes (one more than rows), values.
    Offsets(u64),
    /// Validity, 16-byte views, then as many data buffers as the batch says.
    Views,
}

/// Checks the messages of one Arrow IPC stream, in order.
#[derive(Debug, Default)]
pub struct StreamCheck {
    /// The schema's columns, once its message has been seen.
    columns: Option<Vec<Layout>>,
    /// The value layout of each dictionary, by id.
    dictionaries: HashMap<i64, Layout>,
}

impl StreamCheck {
    /// Parses a message header and checks it (and the body length it goes
    /// with) against the stream so far. Returns the parsed header.
    pub fn check_message<'a>(
        &mut self,
        metadata: &'a [u8],
        body_len: usize,
    ) -> Result<Message<'a>, String> {
        let message = ipc::root_as_message(metadata)
            .map_err(|e| format!("a message header is not valid: {e}"))?;
        self.check_parsed(&message, body_len)?;
        Ok(message)
    }

    /// [`StreamCheck::check_message`] for a header the caller has parsed.
    pub fn check_parsed(&mut self, message: &Message<'_>, body_len: usize) -> Result<(), String> {
        if let Some(schema) = message.header_as_schema() {
            if schema.endianness() == Endianness::Big {
                return Err("big-endian Arrow data is not supported; send little-endian".into());
            }
            let Some(fields) = schema.fields() else {
                return Err("a schema without a list of columns".into());
            };
            let mut columns = Vec::with_capacity(fields.len());
            let mut dictionaries = HashMap::new();
            for (i, field) in fields.into_iter().enumerate() {
                let column =
                    check_field(field).map_err(|e| format!("column {i} of the schema: {e}"))?;
                columns.push(column.0);
                if let Some((id, values)) = column.1 {
                    dictionaries.insert(id, values);
                }
            }
            self.columns = Some(columns);
            self.dictionaries = dictionaries;
            return Ok(());
        }
        if let Some(batch) = message.header_as_record_batch() {
            let columns = self
                .columns
                .clone()
                .ok_or("a record batch came before the stream's schema")?;
            return check_batch(&batch, &columns, body_len);
        }
        if let Some(dictionary) = message.header_as_dictionary_batch() {
            let layout = *self.dictionaries.get(&dictionary.id()).ok_or_else(|| {
                format!(
                    "a dictionary batch for unknown dictionary {}",
                    dictionary.id()
                )
            })?;
            let batch = dictionary.data().ok_or("a dictionary batch without data")?;
            return check_batch(&batch, &[layout], body_len);
        }
        Ok(())
    }
}

/// Checks a (record or dictionary) batch's nodes and buffers against its
/// columns' layouts and the body they point into.
fn check_batch(batch: &RecordBatch<'_>, columns: &[Layout], body_len: usize) -> Result<(), String> {
    if batch.compression().is_some() {
        return Err(
            "compressed Arrow IPC buffers are not accepted; send the stream uncompressed, or Parquet"
                .into(),
        );
    }
    // A column of n rows other than type Null needs at least n bits of the
    // body.
    let most_rows = (body_len as u64).saturating_mul(8);
    let rows = |n: i64| u64::try_from(n).ok().filter(|n| *n <= most_rows);
    if rows(batch.length()).is_none() {
        return Err(format!(
            "a batch of {} rows cannot fit in a body of {body_len} bytes",
            batch.length()
        ));
    }
    let nodes: Vec<_> = batch.nodes().into_iter().flatten().collect();
    if nodes.len() != columns.len() {
        return Err(format!(
            "a batch describes {} columns; its schema has {}",
            nodes.len(),
            columns.len()
        ));
    }
    let buffers: Vec<(u64, u64)> = batch
        .buffers()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, buffer)| {
            let (offset, length) = (buffer.offset(), buffer.length());
            let end = offset.checked_add(length);
            if offset < 0 || length < 0 || end.is_none_or(|end| end as u64 > body_len as u64) {
                return Err(format!(
                    "buffer {i} of a message (offset {offset}, length {length}) lies outside its body of {body_len} bytes"
                ));
            }
            Ok((offset as u64, length as u64))
        })
        .collect::<Result<_, String>>()?;
    let mut variadic: VecDeque<i64> = batch.variadicBufferCounts().into_iter().flatten().collect();
    let mut next = buffers.iter().map(|b| b.1);
    for (i, (node, layout)) in nodes.iter().zip(columns).enumerate() {
        let (n, nulls) = (node.length(), node.null_count());
        let short = |what: &str| format!("column {i}: its {what} is too short for its {n} rows");
        let Some(n) = rows(n).filter(|_| rows(nulls).is_some_and(|z| z <= n as u64)) else {
            return Err(format!(
                "column {i} claims {n} rows ({nulls} null) in a body of {body_len} bytes"
            ));
        };
        let mut take = || {
            next.next()
                .ok_or_else(|| format!("column {i}: the batch has too few buffers"))
        };
        if *layout == Layout::Null {
            continue;
        }
        let validity = take()?;
        if nulls > 0 && validity < n.div_ceil(8) {
            return Err(short("validity bitmap"));
        }
        match *layout {
            Layout::Null => {}
            Layout::Bits => {
                if take()? < n.div_ceil(8) {
                    return Err(short("bitmap of values"));
                }
            }
            Layout::Fixed(width) => {
                if take()? < n.saturating_mul(width) {
                    return Err(short("buffer of values"));
                }
            }
            Layout::Offsets(width) => {
                let offsets = take()?;
                let needed = if n == 0 {
                    0
                } else {
                    (n + 1).saturating_mul(width)
                };
                if offsets < needed || offsets % width != 0 {
                    return Err(short("buffer of offsets"));
                }
                take()?;
            }
            Layout::Views => {
                let views = take()?;
                if views < n.saturating_mul(16) || views % 16 != 0 {
                    return Err(short("buffer of views"));
                }
                let data = variadic
                    .pop_front()
                    .and_then(|c| usize::try_from(c).ok())
                    .ok_or_else(|| format!("column {i}: no count of its data buffers"))?;
                for _ in 0..data {
                    take()?;
                }
            }
        }
    }
    Ok(())
}

/// A flat column of a type arrow-ipc converts without panicking: its
/// layout, and for a dictionary column its id and the values' layout.
fn check_field(field: Field<'_>) -> Result<(Layout, Option<(i64, Layout)>), String> {
    if field.children().is_some_and(|c| !c.is_empty()) {
        return Err("nested columns are not supported; upload flat columns".into());
    }
    let int = |bits: i32| matches!(bits, 8 | 16 | 32 | 64);
    let bytes = |bits: i32| Layout::Fixed(u64::from(bits.unsigned_abs()) / 8);
    let layout = match field.type_type() {
        Type::Null => Some(Layout::Null),
        Type::Bool => Some(Layout::Bits),
        Type::Binary | Type::Utf8 => Some(Layout::Offsets(4)),
        Type::LargeBinary | Type::LargeUtf8 => Some(Layout::Offsets(8)),
        Type::BinaryView | Type::Utf8View => Some(Layout::Views),
        Type::Int => field
            .type_as_int()
            .filter(|t| int(t.bitWidth()))
            .map(|t| bytes(t.bitWidth())),
        Type::FloatingPoint => field
            .type_as_floating_point()
            .and_then(|t| match t.precision().0 {
                0 => Some(Layout::Fixed(2)),
                1 => Some(Layout::Fixed(4)),
                2 => Some(Layout::Fixed(8)),
                _ => None,
            }),
        Type::Date => field.type_as_date().and_then(|t| match t.unit().0 {
            0 => Some(Layout::Fixed(4)),
            1 => Some(Layout::Fixed(8)),
            _ => None,
        }),
        Type::Timestamp => field
            .type_as_timestamp()
            .filter(|t| (0..=3).contains(&t.unit().0))
            .map(|_| Layout::Fixed(8)),
        // Arrow's own rule (precision from 1 to the width's most, scale at
        // most the precision): other decimals panic when shown (found by
        // fuzzing a bound parameter).
        Type::Decimal => field
            .type_as_decimal()
            .filter(|t| {
                let most = match t.bitWidth() {
                    32 => 9,
                    64 => 18,
                    128 => 38,
                    256 => 76,
                    _ => 0,
                };
                (1..=most).contains(&t.precision())
                    && i8::try_from(t.scale()).is_ok()
                    && t.scale() <= t.precision()
            })
            .map(|t| bytes(t.bitWidth())),
        _ => None,
    };
    let Some(layout) = layout else {
        return Err(format!(
            "type {:?} (or its width or unit) is not one an upload can hold",
            field.type_type()
        ));
    };
    match field.dictionary() {
        None => Ok((layout, None)),
        Some(dictionary) => match dictionary.indexType() {
            Some(index) if int(index.bitWidth()) => {
                Ok((bytes(index.bitWidth()), Some((dictionary.id(), layout))))
            }
            _ => Err("a dictionary without a valid integer index type".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch as Batch, StringArray};
    use datafusion::arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
    use std::sync::Arc;

    /// A stream's schema header, and a batch's header and body length.
    fn encoded(batch: &Batch) -> (Vec<u8>, Vec<u8>, usize) {
        let generator = IpcDataGenerator::default();
        let options = IpcWriteOptions::default();
        let schema = generator
            .schema_to_bytes_with_dictionary_tracker(
                &batch.schema(),
                &mut DictionaryTracker::new(false),
                &options,
            )
            .ipc_message;
        let (_, data) = generator
            .encode(
                batch,
                &mut DictionaryTracker::new(false),
                &options,
                &mut Default::default(),
            )
            .unwrap();
        let body = data.arrow_data.len();
        (schema, data.ipc_message, body)
    }

    fn stream_check(schema: &[u8]) -> StreamCheck {
        let mut check = StreamCheck::default();
        check.check_message(schema, 0).unwrap();
        check
    }

    #[test]
    fn buffers_outside_the_body_are_refused() {
        let batch =
            Batch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)]).unwrap();
        let (schema, header, body) = encoded(&batch);
        assert!(stream_check(&schema).check_message(&header, body).is_ok());
        // The same header with a body cut short: its buffers now overrun it.
        let err = stream_check(&schema).check_message(&header, 8).unwrap_err();
        assert!(err.contains("lies outside its body"), "{err}");
        // A batch needs its schema first.
        let err = StreamCheck::default()
            .check_message(&header, body)
            .unwrap_err();
        assert!(err.contains("before the stream's schema"), "{err}");
    }

    #[test]
    fn columns_whose_buffers_cannot_hold_their_rows_are_refused() {
        // A string column of 3 rows, one null; and a column of integers.
        let batch = Batch::try_from_iter([
            (
                "s",
                Arc::new(StringArray::from(vec![Some("a"), None, Some("ccc")])) as _,
            ),
            ("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as _),
        ])
        .unwrap();
        let (schema, header, body) = encoded(&batch);
        assert!(stream_check(&schema).check_message(&header, body).is_ok());
        // The same batch header with the lengths of its buffers rewritten,
        // as a hostile client would send it.
        let message = ipc::root_as_message(&header).unwrap();
        let record = message.header_as_record_batch().unwrap();
        let lengths: Vec<i64> = record
            .buffers()
            .unwrap()
            .iter()
            .map(|b| b.length())
            .collect();
        for (buffer, length, expected) in [
            (0, 0, "validity bitmap"),
            (1, lengths[1] - 1, "buffer of offsets"),
            (1, 4, "buffer of offsets"),
            (4, 8, "buffer of values"),
        ] {
            let forged = with_buffer_length(&header, buffer, length);
            let err = stream_check(&schema)
                .check_message(&forged, body)
                .unwrap_err();
            assert!(
                err.contains(expected),
                "buffer {buffer} of length {length}: {err}"
            );
        }
    }

    /// `header` with buffer `index`'s length replaced (same size: the
    /// flatbuffer's struct is patched where it lies).
    fn with_buffer_length(header: &[u8], index: usize, length: i64) -> Vec<u8> {
        let message = ipc::root_as_message(header).unwrap();
        let record = message.header_as_record_batch().unwrap();
        let buffer = record.buffers().unwrap().get(index);
        let (offset, old) = (buffer.offset(), buffer.length());
        // A Buffer struct is (offset: i64, length: i64), little-endian.
        let mut pattern = offset.to_le_bytes().to_vec();
        pattern.extend(old.to_le_bytes());
        let mut out = header.to_vec();
        let at = out
            .windows(16)
            .position(|w| w == pattern.as_slice())
            .unwrap();
        out[at + 8..at + 16].copy_from_slice(&length.to_le_bytes());
        out
    }
}
