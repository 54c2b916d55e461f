//! A check of a Parquet file's page headers before any page is decoded.
//!
//! parquet-rs sizes buffers by what a page header claims: a dictionary
//! page's value count reserves an offset per value, and a page's
//! uncompressed size is reserved before decompressing. A 3 KiB file whose
//! dictionary page claims 800 million values made the decoder ask for
//! 3.2 GB at once (found by fuzzing `upload`), and an allocation the system
//! refuses aborts the whole process. So every page header of every column
//! chunk is read here first (Thrift compact protocol, the few fields that
//! size buffers) and the file is refused when the claims do not fit its
//! decoded-size budget or cannot be true.

use gyrus_engine::datafusion::parquet::file::metadata::ParquetMetaData;

/// Page type codes of the Parquet format.
const DICTIONARY_PAGE: i32 = 2;

/// Thrift compact field types.
const STOP: u8 = 0;
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;

/// Structs nested deeper than this in a page header are refused (a page
/// header nests two levels; statistics one more).
const MAX_DEPTH: usize = 8;

/// What a page header claims, as far as buffers are sized by it.
#[derive(Debug, Default, PartialEq)]
struct PageHeader {
    page_type: i32,
    uncompressed_size: i64,
    compressed_size: i64,
    /// The dictionary page's value count, for a dictionary page.
    dictionary_values: Option<i64>,
}

/// Checks every page header of every column chunk in `metadata` against
/// `file` (the whole file's bytes): each header readable, each page inside
/// its chunk, the uncompressed sizes summing to at most `budget` bytes and
/// no dictionary claiming more values than its bytes can hold. The error
/// says what was wrong, in words for the person who sent the file.
pub fn check(file: &[u8], metadata: &ParquetMetaData, budget: usize) -> Result<(), String> {
    let mut claimed: u64 = 0;
    for (g, group) in metadata.row_groups().iter().enumerate() {
        for (c, column) in group.columns().iter().enumerate() {
            // As `byte_range`, which asserts on negative offsets.
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let length = column.compressed_size();
            let end = (start >= 0 && length >= 0)
                .then(|| start.checked_add(length))
                .flatten()
                .filter(|&e| e <= file.len() as i64);
            let Some(end) = end else {
                return Err(format!(
                    "row group {g}, column {c}: its pages claim bytes {start}..{} of a {}-byte file",
                    start.saturating_add(length),
                    file.len()
                ));
            };
            let chunk = &file[start as usize..end as usize];
            let mut at = 0usize;
            while at < chunk.len() {
                let mut reader = Reader {
                    bytes: &chunk[at..],
                    at: 0,
                };
                let header = reader.page_header().map_err(|e| {
                    format!(
                        "row group {g}, column {c}: a page header at byte {at} is not valid: {e}"
                    )
                })?;
                let (Ok(uncompressed), Ok(compressed)) = (
                    u64::try_from(header.uncompressed_size),
                    usize::try_from(header.compressed_size),
                ) else {
                    return Err(format!(
                        "row group {g}, column {c}: a page claims a negative size"
                    ));
                };
                at = at
                    .checked_add(reader.at)
                    .and_then(|a| a.checked_add(compressed))
                    .filter(|&a| a <= chunk.len())
                    .ok_or_else(|| {
                        format!(
                            "row group {g}, column {c}: a page claims {compressed} bytes, more \
                             than its column chunk holds"
                        )
                    })?;
                if let Some(values) = header.dictionary_values
                    && (values < 0 || values as u64 > uncompressed)
                {
                    return Err(format!(
                        "row group {g}, column {c}: a dictionary page claims {values} values in \
                         {uncompressed} bytes"
                    ));
                }
                claimed = claimed.saturating_add(uncompressed);
                if claimed > budget as u64 {
                    return Err(format!(
                        "its pages claim more than {} MiB once decompressed, the most a file of \
                         its size may",
                        budget >> 20
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A cursor over Thrift compact-protocol bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, &'static str> {
        let b = *self.bytes.get(self.at).ok_or("it ends early")?;
        self.at += 1;
        Ok(b)
    }

    /// A ULEB128 number, read as parquet-rs reads it (any length; bits
    /// past 64 wrap), so that a header means here what it means there.
    fn varint(&mut self) -> Result<u64, &'static str> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f).wrapping_shl(shift);
            if b & 0x80 == 0 {
                return Ok(value);
            }
            shift = shift.wrapping_add(7);
        }
    }

    fn zigzag(&mut self) -> Result<i64, &'static str> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn skip(&mut self, n: u64) -> Result<(), &'static str> {
        let n = usize::try_from(n).map_err(|_| "a length is too large")?;
        self.at = self
            .at
            .checked_add(n)
            .filter(|&a| a <= self.bytes.len())
            .ok_or("it ends early")?;
        Ok(())
    }

    /// The next field's (id, type) in a struct, `None` at its end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, &'static str> {
        let b = self.byte()?;
        let kind = b & 0x0f;
        if kind == STOP {
            return Ok(None);
        }
        let delta = b >> 4;
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| "a field id is out of range")?
        } else {
            last.checked_add(i16::from(delta))
                .ok_or("a field id is out of range")?
        };
        *last = id;
        Ok(Some((id, kind)))
    }

    /// An `i32` field, truncated from the wire's 64 bits as parquet-rs
    /// does.
    fn i32(&mut self, kind: u8) -> Result<i64, &'static str> {
        if kind != I32 {
            return Err("a size is not a 32-bit integer");
        }
        Ok(i64::from(self.zigzag()? as i32))
    }

    /// Skips one value of `kind`.
    fn skip_value(&mut self, kind: u8, depth: usize) -> Result<(), &'static str> {
        if depth > MAX_DEPTH {
            return Err("it nests too deep");
        }
        match kind {
            TRUE | FALSE => Ok(()),
            BYTE => self.skip(1),
            I16 | I32 | I64 => self.varint().map(|_| ()),
            DOUBLE => self.skip(8),
            BINARY => {
                let n = self.varint()?;
                self.skip(n)
            }
            LIST | SET => {
                let b = self.byte()?;
                let size = match b >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                let element = b & 0x0f;
                for _ in 0..size {
                    // Booleans in a list are one byte each.
                    if matches!(element, TRUE | FALSE) {
                        self.skip(1)?;
                    } else {
                        self.skip_value(element, depth + 1)?;
                    }
                }
                Ok(())
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                for _ in 0..size {
                    self.skip_value(kinds >> 4, depth + 1)?;
                    self.skip_value(kinds & 0x0f, depth + 1)?;
                }
                Ok(())
            }
            STRUCT => {
                let mut last = 0;
                while let Some((_, kind)) = self.field(&mut last)? {
                    self.skip_value(kind, depth + 1)?;
                }
                Ok(())
            }
            _ => Err("a field has an unknown type"),
        }
    }

    /// `PageHeader`: 1 type, 2 uncompressed_page_size, 3
    /// compressed_page_size, 7 dictionary_page_header (1 num_values).
    fn page_header(&mut self) -> Result<PageHeader, &'static str> {
        let mut header = PageHeader::default();
        let (mut sizes, mut last) = (0, 0);
        while let Some((id, kind)) = self.field(&mut last)? {
            match (id, kind) {
                (1, I32) => header.page_type = self.i32(I32)? as i32,
                (2, _) => {
                    header.uncompressed_size = self.i32(kind)?;
                    sizes |= 1;
                }
                (3, _) => {
                    header.compressed_size = self.i32(kind)?;
                    sizes |= 2;
                }
                (7, STRUCT) => {
                    let mut last = 0;
                    while let Some((id, kind)) = self.field(&mut last)? {
                        if (id, kind) == (1, I32) {
                            header.dictionary_values = Some(self.i32(kind)?);
                        } else {
                            self.skip_value(kind, 2)?;
                        }
                    }
                }
                (_, kind) => self.skip_value(kind, 1)?,
            }
        }
        if sizes != 3 {
            return Err("it has no page sizes");
        }
        if header.page_type == DICTIONARY_PAGE && header.dictionary_values.is_none() {
            return Err("a dictionary page has no dictionary header");
        }
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact-protocol page header: type, sizes, and a dictionary
    /// header with `values` when given.
    fn header(page_type: i32, uncompressed: i32, compressed: i32, values: Option<i32>) -> Vec<u8> {
        let zigzag = |v: i32| -> Vec<u8> {
            let mut v = ((v << 1) ^ (v >> 31)) as u32;
            let mut out = Vec::new();
            loop {
                if v < 0x80 {
                    out.push(v as u8);
                    return out;
                }
                out.push((v as u8 & 0x7f) | 0x80);
                v >>= 7;
            }
        };
        let mut out = vec![0x15];
        out.extend(zigzag(page_type));
        out.push(0x15);
        out.extend(zigzag(uncompressed));
        out.push(0x15);
        out.extend(zigzag(compressed));
        if let Some(values) = values {
            // Field 7 (delta 4 from 3), a struct: num_values, encoding.
            out.push(0x4c);
            out.push(0x15);
            out.extend(zigzag(values));
            out.push(0x15);
            out.extend(zigzag(0));
            out.push(STOP);
        }
        out.push(STOP);
        out
    }

    #[test]
    fn reads_what_sizes_buffers() {
        let bytes = header(2, 4000, 3000, Some(811_614_344));
        let mut reader = Reader {
            bytes: &bytes,
            at: 0,
        };
        assert_eq!(
            reader.page_header(),
            Ok(PageHeader {
                page_type: 2,
                uncompressed_size: 4000,
                compressed_size: 3000,
                dictionary_values: Some(811_614_344),
            })
        );
        assert_eq!(reader.at, bytes.len());
    }

    /// Files written by pyarrow 26 (`ingest/tests/fixtures/pyarrow`: 2,000
    /// rows of eight types; snappy with dictionaries and 1 KiB data pages,
    /// zstd with v2 pages and a page index, gzip plain with statistics in
    /// row groups of 500, uncompressed with byte-stream-split and page
    /// checksums) pass the check and decode whole.
    #[test]
    fn files_from_pyarrow_pass_and_decode() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pyarrow");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
            let batches = crate::read(
                gyrus_engine::schema::CanonicalTable::AdPerformance,
                crate::Format::Parquet,
                "fixture",
                bytes,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(rows, 2000, "{}", path.display());
            assert_eq!(batches[0].num_columns(), 8, "{}", path.display());
            seen += 1;
        }
        assert_eq!(seen, 4);
    }

    #[test]
    fn refuses_truncated_and_nonsense_headers() {
        let bytes = header(0, 100, 80, None);
        for cut in 0..bytes.len() {
            let mut reader = Reader {
                bytes: &bytes[..cut],
                at: 0,
            };
            assert!(reader.page_header().is_err(), "cut at {cut}");
        }
        // A dictionary page without its header, and structs nested past
        // the bound, are refused, not followed.
        let mut reader = Reader {
            bytes: &header(2, 100, 80, None),
            at: 0,
        };
        assert!(reader.page_header().is_err());
        let mut deep = vec![0x1c; 64];
        deep.extend([STOP; 64]);
        let mut reader = Reader {
            bytes: &deep,
            at: 0,
        };
        assert_eq!(reader.page_header(), Err("it nests too deep"));
    }
}
