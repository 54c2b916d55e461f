//! Arrow IPC messages from outside (an upload in the streaming format, a
//! Flight DoPut), checked before arrow's reader decodes them: arrow-ipc 59
//! slices a message's body at the offsets its header states and panics on
//! one outside the body (found by fuzzing: `fuzz/regressions/upload/`,
//! `fuzz/regressions/flight_stream/`).
//!
//! ```
//! // Eight bytes of garbage are not a message.
//! assert!(gyrus_engine::ipc::check_message(&[1, 2, 3, 4, 5, 6, 7, 8], 0).is_err());
//! ```

use datafusion::arrow::ipc::{self, Message};

/// Parses a message header and checks that every buffer it describes lies
/// inside a body of `body_len` bytes. Returns the parsed header.
pub fn check_message(metadata: &[u8], body_len: usize) -> Result<Message<'_>, String> {
    let message = ipc::root_as_message(metadata)
        .map_err(|e| format!("a message header is not valid: {e}"))?;
    let batch = message
        .header_as_record_batch()
        .or_else(|| message.header_as_dictionary_batch().and_then(|d| d.data()));
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
    Ok(message)
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
