//! The base-type view of a parsed schema: what a schema node is once its logical type is
//! dropped, and how named references resolve.
//!
//! Owns: [`Base`] (the one mapping of apache-avro's `Schema` variants, logical types
//! included, to the Avro type they are encoded as) and [`NamedTypes`] (named references
//! resolved to their definitions).
//! Must not: let an `apache_avro` type out of `schema/`, or carry the policy of any one
//! user: canonical form, validation, the JSON codec and the compatibility check all build
//! on this view.
//!
//! Logical types never change how a value is encoded, so every consumer treats a `date`
//! as an `int`, a `timestamp-millis` as a `long`, a decimal or `uuid` as its `bytes`,
//! `string` or `fixed` base, and so on. Keeping that mapping here means a logical type
//! added to apache-avro is one compile error in one place.

use std::collections::HashMap;

use apache_avro::Schema;
use apache_avro::schema::{
    DecimalSchema, EnumSchema, FixedSchema, InnerDecimalSchema, Name, RecordSchema, UuidSchema,
};

/// A schema with its logical type dropped and, through [`NamedTypes::base`], its named
/// reference resolved: the shape that decides how a value is encoded.
#[derive(Clone, Copy)]
pub(super) enum Base<'s> {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(&'s FixedSchema),
    Enum(&'s EnumSchema),
    Array(&'s Schema),
    Map(&'s Schema),
    Union(&'s [Schema]),
    Record(&'s RecordSchema),
}

impl<'s> Base<'s> {
    /// The base type of one schema node, without following references.
    ///
    /// # Errors
    /// The referenced name when `schema` is a named reference (`Schema::Ref`): only the
    /// schema that defines the name can resolve it (see [`NamedTypes::base`]).
    pub(super) fn of(schema: &'s Schema) -> Result<Base<'s>, &'s Name> {
        Ok(match schema {
            Schema::Null => Base::Null,
            Schema::Boolean => Base::Boolean,
            Schema::Int | Schema::Date | Schema::TimeMillis => Base::Int,
            Schema::Long
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => Base::Long,
            Schema::Float => Base::Float,
            Schema::Double => Base::Double,
            Schema::Bytes
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::Bytes)
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Bytes,
                ..
            }) => Base::Bytes,
            Schema::String | Schema::Uuid(UuidSchema::String) => Base::String,
            Schema::Fixed(fixed)
            | Schema::Duration(fixed)
            | Schema::Uuid(UuidSchema::Fixed(fixed))
            | Schema::Decimal(DecimalSchema {
                inner: InnerDecimalSchema::Fixed(fixed),
                ..
            }) => Base::Fixed(fixed),
            Schema::Enum(e) => Base::Enum(e),
            Schema::Array(array) => Base::Array(&array.items),
            Schema::Map(map) => Base::Map(&map.types),
            Schema::Union(union) => Base::Union(union.variants()),
            Schema::Record(record) => Base::Record(record),
            Schema::Ref { name } => return Err(name),
        })
    }

    /// The Avro type name: `int`, `fixed`, `record`, … (named types by kind, not by name).
    pub(super) fn kind_name(&self) -> &'static str {
        match self {
            Base::Null => "null",
            Base::Boolean => "boolean",
            Base::Int => "int",
            Base::Long => "long",
            Base::Float => "float",
            Base::Double => "double",
            Base::Bytes => "bytes",
            Base::String => "string",
            Base::Fixed(_) => "fixed",
            Base::Enum(_) => "enum",
            Base::Array(_) => "array",
            Base::Map(_) => "map",
            Base::Union(_) => "union",
            Base::Record(_) => "record",
        }
    }

    /// The Avro type name of an unnamed type, or the full name of a named one.
    pub(super) fn type_name(&self) -> String {
        match self.name() {
            Some(name) => name.fullname(None),
            None => self.kind_name().to_owned(),
        }
    }

    /// The name of a named type (record, enum, fixed).
    pub(super) fn name(&self) -> Option<&'s Name> {
        match self {
            Base::Fixed(f) => Some(&f.name),
            Base::Enum(e) => Some(&e.name),
            Base::Record(r) => Some(&r.name),
            _ => None,
        }
    }
}

/// Every named type of one schema by full name, to resolve `Schema::Ref`s.
pub(super) struct NamedTypes<'s> {
    by_name: HashMap<String, &'s Schema>,
}

impl<'s> NamedTypes<'s> {
    /// Collects the named types defined anywhere in `schema`.
    pub(super) fn of(schema: &'s Schema) -> Self {
        let mut by_name = HashMap::new();
        collect_named(schema, &mut by_name);
        NamedTypes { by_name }
    }

    /// The base type of `schema`, following a named reference to its definition.
    ///
    /// # Errors
    /// The referenced full name when a reference does not resolve.
    pub(super) fn base(&self, schema: &'s Schema) -> Result<Base<'s>, String> {
        Base::of(schema).or_else(|name| {
            let full = name.fullname(None);
            match self.by_name.get(&full) {
                // A definition is never itself a reference, so one step suffices.
                Some(definition) => Base::of(definition).map_err(|_| full),
                None => Err(full),
            }
        })
    }
}

fn collect_named<'s>(schema: &'s Schema, out: &mut HashMap<String, &'s Schema>) {
    match Base::of(schema) {
        Ok(Base::Record(record)) => {
            out.insert(record.name.fullname(None), schema);
            for field in &record.fields {
                collect_named(&field.schema, out);
            }
        }
        Ok(Base::Enum(e)) => {
            out.insert(e.name.fullname(None), schema);
        }
        Ok(Base::Fixed(fixed)) => {
            out.insert(fixed.name.fullname(None), schema);
        }
        Ok(Base::Array(items)) => collect_named(items, out),
        Ok(Base::Map(values)) => collect_named(values, out),
        Ok(Base::Union(branches)) => branches.iter().for_each(|v| collect_named(v, out)),
        _ => {}
    }
}
