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
//!
//! The footer is walked first ([`check_footer`]): parquet-rs skips a list
//! of booleans item by item without reading a byte for each, so a 3 KiB
//! footer of lists that claim two billion booleans each kept a core busy
//! for minutes (found by fuzzing `upload`). parquet-rs reads a field it
//! knows by its id, whatever type the wire gives it, and skips the others
//! by their wire type. So the walk knows the fields of the Parquet
//! format's structs as parquet-rs 59 reads them ([`FILE_META_DATA`],
//! [`PAGE_HEADER`]) and refuses a known field whose wire type is not its
//! own: a file cannot make the walk read bytes one way and parquet-rs
//! another. It refuses containers of booleans (the format has none in a
//! footer or page header) and containers that claim more items than they
//! have bytes, so a walk, and parquet-rs's read after it, costs at most a
//! step a byte.

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

/// The refusal of a known field that comes with another wire type.
const LYING: &str = "a field has another type than the Parquet format gives it";

/// Structs nested deeper than this in a page header are refused (a page
/// header nests two levels; statistics one more).
const MAX_DEPTH: usize = 8;

/// The same for the footer (`FileMetaData`: row groups, column chunks,
/// their metadata, statistics, logical types nest about seven levels).
const MAX_FOOTER_DEPTH: usize = 32;

/// A type of the Parquet format's Thrift definitions (`parquet.thrift`),
/// as far as the walk needs it: enums are `I32`, strings `Binary`, unions
/// structs.
#[derive(Clone, Copy, Debug)]
enum Ty {
    Bool,
    I8,
    I16,
    I32,
    I64,
    Double,
    Binary,
    /// No list of the format holds booleans.
    List(&'static Ty),
    Struct(&'static [(i16, Ty)]),
}

impl Ty {
    /// Whether a value of this type may come with compact type `kind`.
    fn is_wire(self, kind: u8) -> bool {
        match self {
            Ty::Bool => matches!(kind, TRUE | FALSE),
            Ty::I8 => kind == BYTE,
            Ty::I16 => kind == I16,
            Ty::I32 => kind == I32,
            Ty::I64 => kind == I64,
            Ty::Double => kind == DOUBLE,
            Ty::Binary => kind == BINARY,
            Ty::List(_) => kind == LIST,
            Ty::Struct(_) => kind == STRUCT,
        }
    }
}

// The structs parquet-rs 59 reads from a footer and a page header, with
// every field it reads by id (a few more it skips are listed too: walking
// a field by its type reads the same bytes as skipping it by an honest
// wire type). Unions are listed as structs of their variants.
use Ty::{Binary as BIN, Bool as BOOL, Double as F64, I8 as B, I16 as S16, I32 as N, I64 as L};
const EMPTY: &[(i16, Ty)] = &[];
const E: Ty = Ty::Struct(EMPTY);
const TIME_UNIT: &[(i16, Ty)] = &[(1, E), (2, E), (3, E)];
const DECIMAL_TYPE: &[(i16, Ty)] = &[(1, N), (2, N)];
/// `TimestampType` and `TimeType`.
const TIMESTAMP_TYPE: &[(i16, Ty)] = &[(1, BOOL), (2, Ty::Struct(TIME_UNIT))];
const INT_TYPE: &[(i16, Ty)] = &[(1, B), (2, BOOL)];
const VARIANT_TYPE: &[(i16, Ty)] = &[(1, B)];
const GEOMETRY_TYPE: &[(i16, Ty)] = &[(1, BIN)];
const GEOGRAPHY_TYPE: &[(i16, Ty)] = &[(1, BIN), (2, N)];
const LOGICAL_TYPE: &[(i16, Ty)] = &[
    (1, E),
    (2, E),
    (3, E),
    (4, E),
    (5, Ty::Struct(DECIMAL_TYPE)),
    (6, E),
    (7, Ty::Struct(TIMESTAMP_TYPE)),
    (8, Ty::Struct(TIMESTAMP_TYPE)),
    (10, Ty::Struct(INT_TYPE)),
    (11, E),
    (12, E),
    (13, E),
    (14, E),
    (15, E),
    (16, Ty::Struct(VARIANT_TYPE)),
    (17, Ty::Struct(GEOMETRY_TYPE)),
    (18, Ty::Struct(GEOGRAPHY_TYPE)),
];
const SCHEMA_ELEMENT: &[(i16, Ty)] = &[
    (1, N),
    (2, N),
    (3, N),
    (4, BIN),
    (5, N),
    (6, N),
    (7, N),
    (8, N),
    (9, N),
    (10, Ty::Struct(LOGICAL_TYPE)),
];
/// `Statistics` of a column chunk and of a page.
const STATISTICS: &[(i16, Ty)] = &[
    (1, BIN),
    (2, BIN),
    (3, L),
    (4, L),
    (5, BIN),
    (6, BIN),
    (7, BOOL),
    (8, BOOL),
];
const PAGE_ENCODING_STATS: &[(i16, Ty)] = &[(1, N), (2, N), (3, N)];
const SIZE_STATISTICS: &[(i16, Ty)] = &[(1, L), (2, Ty::List(&L)), (3, Ty::List(&L))];
const BOUNDING_BOX: &[(i16, Ty)] = &[
    (1, F64),
    (2, F64),
    (3, F64),
    (4, F64),
    (5, F64),
    (6, F64),
    (7, F64),
    (8, F64),
];
const GEOSPATIAL_STATISTICS: &[(i16, Ty)] = &[(1, Ty::Struct(BOUNDING_BOX)), (2, Ty::List(&N))];
const KEY_VALUE: &[(i16, Ty)] = &[(1, BIN), (2, BIN)];
const COLUMN_META_DATA: &[(i16, Ty)] = &[
    (1, N),
    (2, Ty::List(&N)),
    (3, Ty::List(&BIN)),
    (4, N),
    (5, L),
    (6, L),
    (7, L),
    (8, Ty::List(&Ty::Struct(KEY_VALUE))),
    (9, L),
    (10, L),
    (11, L),
    (12, Ty::Struct(STATISTICS)),
    (13, Ty::List(&Ty::Struct(PAGE_ENCODING_STATS))),
    (14, L),
    (15, N),
    (16, Ty::Struct(SIZE_STATISTICS)),
    (17, Ty::Struct(GEOSPATIAL_STATISTICS)),
];
const ENCRYPTION_WITH_COLUMN_KEY: &[(i16, Ty)] = &[(1, Ty::List(&BIN)), (2, BIN)];
const COLUMN_CRYPTO_META_DATA: &[(i16, Ty)] =
    &[(1, E), (2, Ty::Struct(ENCRYPTION_WITH_COLUMN_KEY))];
const COLUMN_CHUNK: &[(i16, Ty)] = &[
    (1, BIN),
    (2, L),
    (3, Ty::Struct(COLUMN_META_DATA)),
    (4, L),
    (5, N),
    (6, L),
    (7, N),
    (8, Ty::Struct(COLUMN_CRYPTO_META_DATA)),
    (9, BIN),
];
const SORTING_COLUMN: &[(i16, Ty)] = &[(1, N), (2, BOOL), (3, BOOL)];
const ROW_GROUP: &[(i16, Ty)] = &[
    (1, Ty::List(&Ty::Struct(COLUMN_CHUNK))),
    (2, L),
    (3, L),
    (4, Ty::List(&Ty::Struct(SORTING_COLUMN))),
    (5, L),
    (6, L),
    (7, S16),
];
/// `AesGcmV1` and `AesGcmCtrV1`.
const AES_GCM: &[(i16, Ty)] = &[(1, BIN), (2, BIN), (3, BOOL)];
const ENCRYPTION_ALGORITHM: &[(i16, Ty)] = &[(1, Ty::Struct(AES_GCM)), (2, Ty::Struct(AES_GCM))];
const COLUMN_ORDER: &[(i16, Ty)] = &[(1, E)];
/// `FileMetaData`, the footer.
const FILE_META_DATA: &[(i16, Ty)] = &[
    (1, N),
    (2, Ty::List(&Ty::Struct(SCHEMA_ELEMENT))),
    (3, L),
    (4, Ty::List(&Ty::Struct(ROW_GROUP))),
    (5, Ty::List(&Ty::Struct(KEY_VALUE))),
    (6, BIN),
    (7, Ty::List(&Ty::Struct(COLUMN_ORDER))),
    (8, Ty::Struct(ENCRYPTION_ALGORITHM)),
    (9, BIN),
];
const DATA_PAGE_HEADER: &[(i16, Ty)] =
    &[(1, N), (2, N), (3, N), (4, N), (5, Ty::Struct(STATISTICS))];
const DICTIONARY_PAGE_HEADER: &[(i16, Ty)] = &[(1, N), (2, N), (3, BOOL)];
const DATA_PAGE_HEADER_V2: &[(i16, Ty)] = &[
    (1, N),
    (2, N),
    (3, N),
    (4, N),
    (5, N),
    (6, N),
    (7, BOOL),
    (8, Ty::Struct(STATISTICS)),
];
/// `PageHeader`.
const PAGE_HEADER: &[(i16, Ty)] = &[
    (1, N),
    (2, N),
    (3, N),
    (4, N),
    (5, Ty::Struct(DATA_PAGE_HEADER)),
    (6, E),
    (7, Ty::Struct(DICTIONARY_PAGE_HEADER)),
    (8, Ty::Struct(DATA_PAGE_HEADER_V2)),
];

/// Walks the footer of `file` (a Parquet file: `…footer, its length as
/// 4 bytes little-endian, "PAR1"`) as the Thrift compact protocol reads
/// parquet-rs reads it, refusing known fields of another type than their
/// own, containers of booleans or of more items than they have bytes, and
/// nesting past [`MAX_FOOTER_DEPTH`]. Files that do not end so are left to
/// the Parquet reader's own error.
pub fn check_footer(file: &[u8]) -> Result<(), String> {
    let Some(tail) = file.len().checked_sub(8).map(|at| &file[at..]) else {
        return Ok(());
    };
    if &tail[4..] != b"PAR1" {
        return Ok(());
    }
    let length = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize;
    let Some(start) = (file.len() - 8).checked_sub(length) else {
        return Ok(());
    };
    Reader::new(&file[start..file.len() - 8], MAX_FOOTER_DEPTH)
        .walk(Ty::Struct(FILE_META_DATA), STRUCT, 0)
        .map_err(|e| format!("its footer is not valid: {e}"))
}

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
                let mut reader = Reader::new(&chunk[at..], MAX_DEPTH);
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
    /// Containers nested deeper than this are refused.
    max_depth: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], max_depth: usize) -> Self {
        Reader {
            bytes,
            at: 0,
            max_depth,
        }
    }

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

    /// A container's item count, refused when more than the bytes left:
    /// every item takes at least one (booleans in containers too).
    fn items(&mut self, claimed: u64) -> Result<u64, &'static str> {
        if claimed > (self.bytes.len() - self.at) as u64 {
            return Err("a list claims more items than it has bytes");
        }
        Ok(claimed)
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

    /// An `i32` value, truncated from the wire's 64 bits as parquet-rs
    /// does (its type was checked against the field's own by [`known`]).
    fn i32(&mut self) -> Result<i64, &'static str> {
        Ok(i64::from(self.zigzag()? as i32))
    }

    /// A list's or set's header: its item count (at most the bytes left)
    /// and its items' type.
    fn list_header(&mut self) -> Result<(u64, u8), &'static str> {
        let b = self.byte()?;
        let size = match b >> 4 {
            15 => self.varint()?,
            n => u64::from(n),
        };
        Ok((self.items(size)?, b & 0x0f))
    }

    /// Reads one value of `ty` that came with compact type `kind`, as
    /// parquet-rs reads it: a known field by its type (refused when the
    /// wire gives another), an unknown one skipped by its wire type.
    fn walk(&mut self, ty: Ty, kind: u8, depth: usize) -> Result<(), &'static str> {
        if !ty.is_wire(kind) {
            return Err(LYING);
        }
        if depth > self.max_depth {
            return Err("it nests too deep");
        }
        match ty {
            Ty::Struct(fields) => {
                let mut last = 0;
                while let Some((id, kind)) = self.field(&mut last)? {
                    self.walk_field(fields, id, kind, depth + 1)?;
                }
                Ok(())
            }
            Ty::List(item) => {
                let (size, kind) = self.list_header()?;
                for _ in 0..size {
                    self.walk(*item, kind, depth + 1)?;
                }
                Ok(())
            }
            _ => self.skip_value(kind, depth),
        }
    }

    /// Reads field `id` of a struct whose known fields are `fields`.
    fn walk_field(
        &mut self,
        fields: &[(i16, Ty)],
        id: i16,
        kind: u8,
        depth: usize,
    ) -> Result<(), &'static str> {
        match fields.iter().find(|(known, _)| *known == id) {
            Some(&(_, ty)) => self.walk(ty, kind, depth),
            None => self.skip_value(kind, depth),
        }
    }

    /// Skips one value of `kind`, as parquet-rs skips a field it does not
    /// know. Containers of booleans are refused: parquet-rs steps through
    /// them without reading a byte an item, and the format has none.
    fn skip_value(&mut self, kind: u8, depth: usize) -> Result<(), &'static str> {
        const BOOLEANS: &str =
            "a container of booleans, which the Parquet format never writes here";
        if depth > self.max_depth {
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
                let (size, element) = self.list_header()?;
                if matches!(element, TRUE | FALSE) {
                    return Err(BOOLEANS);
                }
                for _ in 0..size {
                    self.skip_value(element, depth + 1)?;
                }
                Ok(())
            }
            MAP => {
                let size = self.varint()?;
                if size == 0 {
                    return Ok(());
                }
                let kinds = self.byte()?;
                let (key, value) = (kinds >> 4, kinds & 0x0f);
                if [key, value].into_iter().any(|k| matches!(k, TRUE | FALSE)) {
                    return Err(BOOLEANS);
                }
                for _ in 0..self.items(size)? {
                    self.skip_value(key, depth + 1)?;
                    self.skip_value(value, depth + 1)?;
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

    /// `PageHeader`, walked as [`PAGE_HEADER`], keeping 1 type, 2
    /// uncompressed_page_size, 3 compressed_page_size and 7
    /// dictionary_page_header's 1 num_values.
    fn page_header(&mut self) -> Result<PageHeader, &'static str> {
        let mut header = PageHeader::default();
        let (mut sizes, mut last) = (0, 0);
        while let Some((id, kind)) = self.field(&mut last)? {
            known(PAGE_HEADER, id, kind)?;
            match id {
                1 => header.page_type = self.i32()? as i32,
                2 => {
                    header.uncompressed_size = self.i32()?;
                    sizes |= 1;
                }
                3 => {
                    header.compressed_size = self.i32()?;
                    sizes |= 2;
                }
                7 => {
                    let mut last = 0;
                    while let Some((id, kind)) = self.field(&mut last)? {
                        known(DICTIONARY_PAGE_HEADER, id, kind)?;
                        if id == 1 {
                            header.dictionary_values = Some(self.i32()?);
                        } else {
                            self.walk_field(DICTIONARY_PAGE_HEADER, id, kind, 2)?;
                        }
                    }
                }
                _ => self.walk_field(PAGE_HEADER, id, kind, 1)?,
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

/// Refuses field `id` of a struct whose known fields are `fields` when the
/// wire gives it another type than its own; an unknown field passes.
fn known(fields: &[(i16, Ty)], id: i16, kind: u8) -> Result<(), &'static str> {
    match fields.iter().find(|(known, _)| *known == id) {
        Some(&(_, ty)) if !ty.is_wire(kind) => Err(LYING),
        _ => Ok(()),
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
        let mut reader = Reader::new(&bytes, MAX_DEPTH);
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
    fn containers_claiming_more_items_than_bytes_are_refused_unwalked() {
        // A struct with one field, a list (field 1, type 9) of integers
        // claiming 2^31 items in five bytes: the walk refuses at once
        // rather than count to the end of the bytes.
        let list = [0x19, 0xf5, 0x80, 0x80, 0x80, 0x80, 0x08, STOP];
        let mut reader = Reader::new(&list, MAX_FOOTER_DEPTH);
        assert_eq!(
            reader.skip_value(STRUCT, 0),
            Err("a list claims more items than it has bytes")
        );
        // A map (field 1, type 11) of integers to integers, likewise.
        let map = [0x1b, 0x80, 0x80, 0x80, 0x80, 0x08, 0x55, STOP];
        let mut reader = Reader::new(&map, MAX_FOOTER_DEPTH);
        assert_eq!(
            reader.skip_value(STRUCT, 0),
            Err("a list claims more items than it has bytes")
        );
        // Even three booleans in a list are refused: parquet-rs would skip
        // them without reading their bytes, and read those as fields.
        let three = [0x19, 0x31, 1, 2, 1, STOP];
        let mut reader = Reader::new(&three, MAX_FOOTER_DEPTH);
        assert_eq!(
            reader.skip_value(STRUCT, 0),
            Err("a container of booleans, which the Parquet format never writes here")
        );
        // Three strings pass, every byte read.
        let strings = [0x19, 0x38, 1, b'a', 0, 2, b'b', b'c', STOP];
        let mut reader = Reader::new(&strings, MAX_FOOTER_DEPTH);
        assert_eq!(reader.skip_value(STRUCT, 0), Ok(()));
        assert_eq!(reader.at, strings.len());
    }

    #[test]
    fn a_dictionary_page_claiming_more_values_than_its_bytes_is_refused_unread() {
        // The pyarrow fixture with dictionaries, its `platform` column's
        // dictionary page (at byte 2755: type 2, 40 bytes uncompressed, 41
        // compressed, then its header with 3 values) made to claim 63.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pyarrow/snappy_dictionary_v1.parquet");
        let mut file = std::fs::read(path).unwrap();
        let header = [0x15, 0x04, 0x15, 0x50, 0x15, 0x52, 0x4c, 0x15, 0x06];
        assert_eq!(file[2755..2764], header, "the fixture's dictionary page");
        file[2763] = 0x7e;
        let err = crate::read(
            gyrus_engine::schema::CanonicalTable::AdPerformance,
            crate::Format::Parquet,
            "fixture",
            bytes::Bytes::from(file),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("column 1: a dictionary page claims 63 values in 40 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_known_field_whose_wire_type_lies_is_refused() {
        // `FileMetaData` field 5 (key_value_metadata, a list) sent as a
        // string. Skipped by its wire type, the string hides what
        // parquet-rs reads there by the field's id: a list of one
        // `KeyValue` whose unknown field 3 is a list claiming 2^31
        // booleans, which parquet-rs would step through.
        let hidden = [0x1c, 0x39, 0xf1, 0x80, 0x80, 0x80, 0x80, 0x08, STOP];
        let mut footer = vec![0x58, hidden.len() as u8];
        footer.extend(hidden);
        footer.push(STOP);
        let mut generic = Reader::new(&footer, MAX_FOOTER_DEPTH);
        assert_eq!(
            generic.skip_value(STRUCT, 0),
            Ok(()),
            "the wire types alone pass"
        );
        let mut reader = Reader::new(&footer, MAX_FOOTER_DEPTH);
        assert_eq!(
            reader.walk(Ty::Struct(FILE_META_DATA), STRUCT, 0),
            Err(LYING)
        );
        // A list of the format whose items claim another type, likewise:
        // field 5 as a list of strings instead of `KeyValue` structs.
        let footer = [0x59, 0x18, 1, b'k', STOP];
        let mut reader = Reader::new(&footer, MAX_FOOTER_DEPTH);
        assert_eq!(
            reader.walk(Ty::Struct(FILE_META_DATA), STRUCT, 0),
            Err(LYING)
        );
        // The same lie in a page header: field 5 (data_page_header) sent
        // as a string.
        let mut page = header(0, 100, 80, None);
        page.pop();
        page.extend([0x28, 0x01, 0x00, STOP]);
        let mut reader = Reader::new(&page, MAX_DEPTH);
        assert_eq!(reader.page_header(), Err(LYING));
        // The fields the check keeps are held to their types too: a size
        // sent as a 64-bit integer, a dictionary's value count likewise.
        let mut page = header(0, 100, 80, None);
        page[2] = 0x16;
        assert_eq!(Reader::new(&page, MAX_DEPTH).page_header(), Err(LYING));
        let mut page = header(2, 100, 80, Some(10));
        let count = page.iter().position(|&b| b == 0x4c).unwrap() + 1;
        page[count] = 0x16;
        assert_eq!(Reader::new(&page, MAX_DEPTH).page_header(), Err(LYING));
    }

    #[test]
    fn the_field_tables_were_derived_from_the_parquet_in_use() {
        // The tables above list the fields parquet-rs 59 reads by id. A
        // new parquet-rs may read more (or other types): re-derive them
        // from its `thrift_struct!` definitions and hand-written readers
        // (`file/metadata/thrift`, `format.rs`), then change this version.
        let lock = include_str!("../../Cargo.lock");
        let version = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"parquet\"\n"))
            .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = ")))
            .unwrap();
        assert!(
            version.starts_with("\"59."),
            "parquet is {version}: re-derive the field tables of parquet_pages.rs"
        );
    }

    #[test]
    fn a_footer_of_boolean_lists_is_refused_before_parquet_reads_it() {
        // Found by fuzzing `upload`: a 3.4 KiB file whose footer parquet-rs
        // spent 42 s skipping (under AddressSanitizer).
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../fuzz/regressions/upload/timeout-0350ed4b1f043cf8fc9ebe69e4e7419795eb2f90");
        let file = std::fs::read(path).unwrap();
        let err = check_footer(&file).unwrap_err();
        assert!(err.contains("more items than it has bytes"), "{err}");
    }

    #[test]
    fn refuses_truncated_and_nonsense_headers() {
        let bytes = header(0, 100, 80, None);
        for cut in 0..bytes.len() {
            let mut reader = Reader::new(&bytes[..cut], MAX_DEPTH);
            assert!(reader.page_header().is_err(), "cut at {cut}");
        }
        // A dictionary page without its header, and structs nested past
        // the bound, are refused, not followed.
        let dictionary = header(2, 100, 80, None);
        let mut reader = Reader::new(&dictionary, MAX_DEPTH);
        assert!(reader.page_header().is_err());
        // Field 9 is not `PageHeader`'s: skipped by its wire type.
        let mut deep = vec![0x9c];
        deep.extend([0x1c; 63]);
        deep.extend([STOP; 64]);
        let mut reader = Reader::new(&deep, MAX_DEPTH);
        assert_eq!(reader.page_header(), Err("it nests too deep"));
    }
}
