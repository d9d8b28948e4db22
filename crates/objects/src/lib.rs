//! eventbus's sObject model for Change Data Capture.
//!
//! Owns: the objects an org has ([`model`]: fields, types, compound fields, the
//! catalog), the built-in standard objects ([`standard`]), objects and channel members
//! read from Salesforce DX source ([`dx`]), the Avro schema of an object's change event
//! ([`schema`]), the field bitmaps of the change event header ([`bitmap`]), REST input
//! checked and normalized into a stored record ([`record`]), a change turned into an
//! encoded change event ([`change`]), and line diffs of long text values for
//! `diffFields` ([`textdiff`]).
//! Must not: do I/O other than reading DX files, run async code, store records, or name
//! `apache_avro` (Avro goes through `eventbus_schema::ParsedSchema`).
//!
//! Module dependencies (one way): `model` ← `standard`, `dx`, `schema`, `record`;
//! `bitmap` ← `change`; `record` ← `change` (the record type and date formats);
//! `textdiff` ← `change`.

pub mod bitmap;
pub mod change;
pub mod dx;
pub mod ids;
pub mod model;
pub mod record;
pub mod schema;
pub mod standard;
pub mod textdiff;

pub use bitmap::{BitmapError, FieldSet};
pub use change::{ChangeBody, ChangeError, ChangeType, Header};
pub use dx::{ChannelMember, DxObjectError, read_channel_members, read_objects};
pub use model::{Component, FieldDef, FieldType, FlatField, ObjectCatalog, ObjectDef};
pub use record::{FieldError, Op, Record, normalize_input};
pub use schema::change_event_schema;
