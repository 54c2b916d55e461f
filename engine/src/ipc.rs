//! Arrow IPC messages from outside (an upload in the streaming format, a
//! Flight DoPut), checked before arrow's reader decodes them: arrow-ipc 59
//! slices a message's body at the offsets its header states and panics on
//! one outside the body (found by fuzzing: `fuzz/regressions/upload/`,
//! `fuzz/regressions/flight_stream/`).
//!
//!
//! A schema message is checked the same way: arrow-ipc 59 converts field
//! types with `panic!` / `unimplemented!` on types, widths and units it does
//! not know (type NONE, a 7-bit integer, a nested type without children,
//! found by fuzzing the same targets). Uploads are flat tables, so only
//! flat columns of the types arrow can read are let through.
//!
//! ```
//! // Eight bytes of garbage are not a message.
//! assert!(gyrus_engine::ipc::check_message(&[1, 2, 3, 4, 5, 6, 7, 8], 0).is_err());
//! ```

use datafusion::arrow::ipc::{self, Endianness, Field, Message, Type};

/// Parses a message header and checks that every buffer it describes lies
/// inside a body of `body_len` bytes. Returns the parsed header.
pub fn check_message(metadata: &[u8], body_len: usize) -> Result<Message<'_>, String> {
    let message = ipc::root_as_message(metadata)
        .map_err(|e| format!("a message header is not valid: {e}"))?;
    check_parsed(&message, body_len)?;
    Ok(message)
}

/// [`check_message`] for a header the caller has parsed already.
pub fn check_parsed(message: &Message<'_>, body_len: usize) -> Result<(), String> {
    if let Some(schema) = message.header_as_schema() {
        if schema.endianness() == Endianness::Big {
            return Err("big-endian Arrow data is not supported; send little-endian".into());
        }
        let Some(fields) = schema.fields() else {
            return Err("a schema without a list of columns".into());
        };
        for (i, field) in fields.into_iter().enumerate() {
            check_field(field).map_err(|e| format!("column {i} of the schema: {e}"))?;
        }
    }
    let batch = message
        .header_as_record_batch()
        .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
    // A column of n rows other than type Null needs at least n bits of the
    // body; arrow trusts a stated length and panics on a short buffer.
    let most_rows = (body_len as u64).saturating_mul(8);
    let rows = |n: i64| u64::try_from(n).ok().filter(|n| *n <= most_rows);
    if let Some(batch) = batch {
        if rows(batch.length()).is_none() {
            return Err(format!(
                "a batch of {} rows cannot fit in a body of {body_len} bytes",
                batch.length()
            ));
        }
        for (i, node) in batch.nodes().into_iter().flatten().enumerate() {
            if rows(node.length()).is_none()
                || rows(node.null_count()).is_none_or(|n| n > node.length() as u64)
            {
                return Err(format!(
                    "column node {i} claims {} rows ({} null) in a body of {body_len} bytes",
                    node.length(),
                    node.null_count()
                ));
            }
        }
    }
    let buffers = batch.and_then(|b| b.buffers()).into_iter().flatten();
    for (i, buffer) in buffers.enumerate() {
        let (offset, length) = (buffer.offset(), buffer.length());
        let end = offset.checked_add(length);
        if offset < 0 || length < 0 || end.is_none_or(|end| end as u64 > body_len as u64) {
            return Err(format!(
                "buffer {i} of a message (offset {offset}, length {length}) lies outside its body of {body_len} bytes"
            ));
        }
    }
    Ok(())
}

/// A flat column of a type arrow-ipc converts without panicking.
fn check_field(field: Field<'_>) -> Result<(), String> {
    if field.children().is_some_and(|c| !c.is_empty()) {
        return Err("nested columns are not supported; upload flat columns".into());
    }
    let int = |bits: i32| matches!(bits, 8 | 16 | 32 | 64);
    if let Some(dictionary) = field.dictionary() {
        match dictionary.indexType() {
            Some(index) if int(index.bitWidth()) => {}
            _ => return Err("a dictionary without a valid integer index type".into()),
        }
    }
    let ok = match field.type_type() {
        Type::Null
        | Type::Bool
        | Type::Binary
        | Type::LargeBinary
        | Type::BinaryView
        | Type::Utf8
        | Type::LargeUtf8
        | Type::Utf8View => true,
        Type::Int => field.type_as_int().is_some_and(|t| int(t.bitWidth())),
        Type::FloatingPoint => field
            .type_as_floating_point()
            .is_some_and(|t| (0..=2).contains(&t.precision().0)),
        Type::Date => field
            .type_as_date()
            .is_some_and(|t| (0..=1).contains(&t.unit().0)),
        Type::Timestamp => field
            .type_as_timestamp()
            .is_some_and(|t| (0..=3).contains(&t.unit().0)),
        Type::Decimal => field.type_as_decimal().is_some_and(|t| {
            matches!(t.bitWidth(), 32 | 64 | 128 | 256)
                && u8::try_from(t.precision()).is_ok()
                && i8::try_from(t.scale()).is_ok()
        }),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "type {:?} (or its width or unit) is not one an upload can hold",
            field.type_type()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions};
    use std::sync::Arc;

    #[test]
    fn buffers_outside_the_body_are_refused() {
        let batch =
            RecordBatch::try_from_iter([("n", Arc::new(Int64Array::from(vec![1, 2, 3])) as _)])
                .unwrap();
        let (_, encoded) = IpcDataGenerator::default()
            .encode(
                &batch,
                &mut DictionaryTracker::new(false),
                &IpcWriteOptions::default(),
                &mut Default::default(),
            )
            .unwrap();
        let body = encoded.arrow_data.len();
        assert!(check_message(&encoded.ipc_message, body).is_ok());
        // The same header with a body cut short: its buffers now overrun it.
        let err = check_message(&encoded.ipc_message, 8).unwrap_err();
        assert!(err.contains("lies outside its body"), "{err}");
    }
}
