//! Arrow types as they go over the wire (Flight SQL, HTTP Arrow streams).
//!
//! DataFusion scans hand back `Utf8View` / `BinaryView` strings, and
//! dictionary-encoded columns; JDBC drivers and several BI tools reject view
//! types, and the Flight encoder would hydrate dictionaries anyway. Every
//! schema Gyrus announces (FlightInfo, GetTables, prepared statements) and
//! every batch it sends goes through [`wire_schema`] / [`to_wire`], so the
//! announced schema and the stream's are the same, nullability included.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;

/// The type a column of type `data_type` is sent as.
pub fn wire_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        DataType::Dictionary(_, values) => wire_type(values),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            DataType::List(wire_field(f))
        }
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(wire_field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(wire_field).collect()),
        DataType::Map(f, sorted) => DataType::Map(wire_field(f), *sorted),
        other => other.clone(),
    }
}

fn wire_field(field: &FieldRef) -> FieldRef {
    let wire = wire_type(field.data_type());
    if &wire == field.data_type() {
        field.clone()
    } else {
        Arc::new(field.as_ref().clone().with_data_type(wire))
    }
}

/// The schema a result with `schema` is announced and sent with.
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| wire_field(f).as_ref().clone())
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with its columns cast to `schema` (a [`wire_schema`] of its own).
pub fn to_wire(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if batch.schema_ref() == schema {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(column.clone())
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, DictionaryArray, StringViewArray};
    use datafusion::arrow::datatypes::Int32Type;

    #[test]
    fn views_and_dictionaries_become_plain_types_and_nullability_stays() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Utf8View, false),
            Field::new(
                "b",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Field::new("c", DataType::Date32, true),
        ]);
        let wire = wire_schema(&schema);
        assert_eq!(wire.field(0).data_type(), &DataType::Utf8);
        assert!(!wire.field(0).is_nullable());
        assert_eq!(wire.field(1).data_type(), &DataType::Utf8);
        assert_eq!(wire.field(2).data_type(), &DataType::Date32);

        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringViewArray::from(vec!["x", "y"])),
                Arc::new(DictionaryArray::<Int32Type>::from_iter([Some("p"), None])),
                Arc::new(datafusion::arrow::array::Date32Array::from(vec![1, 2])),
            ],
        )
        .unwrap();
        let sent = to_wire(batch, &wire).unwrap();
        assert_eq!(sent.schema(), wire);
        assert_eq!(sent.column(1).null_count(), 1);
    }
}
