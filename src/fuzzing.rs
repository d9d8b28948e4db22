//! Fuzz target bodies: one `pub fn <target>(data: &[u8])` per target of the `fuzz/` crate,
//! shared with the unit test below that replays the saved corpora and fixed crashers.
//!
//! Owns: turning fuzzer bytes into calls of the real parsers (schema, payload validator,
//! replay ids, topics folder, JSON encoder, channel filter expressions) and of the real [`PubSubService`], and the
//! invariants each target checks. A broken invariant panics, which libFuzzer reports as a
//! crash.
//! Must not: be part of the server (it is compiled only for tests and with the `fuzzing`
//! feature), or loosen a check to make a target pass: a finding is fixed in the product
//! code. It is the one module outside `api/` that names `tonic` (to build request streams
//! the way the transport does), which is why it never ships.
//!
//! Every target stays fast (well under 10 ms an execution) and bounded: the stream target
//! runs on a current-thread runtime over the in-memory log and gives every call a
//! deadline, so a stream that never ends is reported as a hang instead of stalling.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::codec::{Codec, Streaming};
use tonic::{Code, Request, Status};

use crate::api::pb::pub_sub_server::PubSub;
use crate::api::{ApiConfig, PubSubService, pb, status};
use crate::broker::provision::parse_topic_file;
use crate::broker::{Broker, BrokerConfig};
use crate::log::SharedLog;
use crate::log::memory::MemoryTopicLog;
use crate::schema::json::JsonDefaults;
use crate::schema::validate::{PayloadError, step_budget};
use crate::schema::{ParsedSchema, SchemaLimits, compat, schema_id_of};
use crate::telemetry::metrics::Metrics;
use crate::types::{Offset, REPLAY_ID_LEN, ReplayId, TopicName};

/// The topic every stream-target run provisions, from the repo's example topics folder.
const ORDER_TOPIC: &str = "/event/Order_Event__e";
/// The example topics folder's schema (what `eventbus serve --topics examples/topics` loads).
const ORDER_SCHEMA: &str = include_str!("../examples/topics/event/Order_Event__e.avsc");
/// A record using every Avro type (nested, named, referenced, logical), so payload
/// mutations reach every branch of the validator.
const RICH_SCHEMA: &str = r#"{"type":"record","name":"Rich","namespace":"fuzz","fields":[
    {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
    {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"s","type":"string"},
    {"name":"by","type":"bytes"},
    {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
    {"name":"fx","type":{"type":"fixed","name":"Fx","size":4}},
    {"name":"a","type":{"type":"array","items":["null","long","string"]}},
    {"name":"m","type":{"type":"map","values":{"type":"record","name":"In","fields":[
        {"name":"x","type":"int"},{"name":"e2","type":"E"}]}}},
    {"name":"u","type":["null","string","double","In","Fx"]},
    {"name":"n","type":{"type":"array","items":{"type":"array","items":"null"}}}
]}"#;
/// A recursive schema: payloads can nest as deep as they like, the validator must not.
const LIST_SCHEMA: &str = r#"{"type":"record","name":"Node","fields":[
    {"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#;
/// The fixed schemas a target can pick by index.
const FIXED_SCHEMAS: [&str; 3] = [ORDER_SCHEMA, RICH_SCHEMA, LIST_SCHEMA];

/// How long one stream-target call may take after its request stream has ended. Nothing
/// in a call waits on a timer (keepalive and first-request timeouts are far longer), so
/// running out of this means a stream that never finishes: a hang.
const CALL_DEADLINE: Duration = Duration::from_secs(2);
/// Most responses drained from one stream; the inputs cannot justify more (each response
/// carries at least one event, and an input publishes a few hundred at most).
const MAX_RESPONSES: usize = 10_000;
/// gRPC message size limit of the stream target's decoders: the server's default.
const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
/// Longest single message the stream target cuts out of its input.
const MAX_CHUNK: usize = 4096;

/// Values the CLI fills in for `CreatedDate` and `CreatedById`.
fn json_defaults() -> JsonDefaults {
    JsonDefaults {
        created_date_ms: 1_700_000_000_000,
        created_by_id: "005000000000000AAA".to_owned(),
    }
}

/// A cursor over fuzzer bytes; reads past the end give zeros and empty slices, so every
/// input decodes to something.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    /// The bytes up to the next NUL (dropped), or all that is left.
    fn until_nul(&mut self) -> &'a [u8] {
        match self.data.iter().position(|b| *b == 0) {
            Some(i) => {
                let head = &self.data[..i];
                self.data = &self.data[i + 1..];
                head
            }
            None => self.take(self.data.len()),
        }
    }

    fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// A schema chosen by the input: one of [`FIXED_SCHEMAS`], one generated from the bytes
/// by [`SchemaGen`], or schema JSON text up to a NUL. `None` when the text does not parse.
fn schema_from(input: &mut Input<'_>) -> Option<ParsedSchema> {
    let text = match input.byte() % 4 {
        0 => FIXED_SCHEMAS[usize::from(input.byte()) % FIXED_SCHEMAS.len()].to_owned(),
        1 | 2 => SchemaGen::new(input).root().to_string(),
        _ => String::from_utf8_lossy(input.until_nul()).into_owned(),
    };
    ParsedSchema::parse(&text).ok()
}

/// Builds Avro schema JSON from fuzzer bytes: any type at any position, named types that
/// later positions may reference (so recursion happens), logical types. Invalid
/// combinations (duplicate union branches) are kept: parsing must reject them cleanly.
struct SchemaGen<'i, 'a> {
    input: &'i mut Input<'a>,
    named: Vec<String>,
}

/// Deepest nesting the generator writes; deeper positions get primitives.
const GEN_MAX_DEPTH: usize = 5;

impl<'i, 'a> SchemaGen<'i, 'a> {
    fn new(input: &'i mut Input<'a>) -> Self {
        Self {
            input,
            named: Vec::new(),
        }
    }

    fn root(&mut self) -> Value {
        self.record(0)
    }

    fn fresh_name(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{}", self.named.len());
        self.named.push(name.clone());
        name
    }

    fn record(&mut self, depth: usize) -> Value {
        let name = self.fresh_name("R");
        let n = self.input.byte() % 5;
        let fields: Vec<Value> = (0..n)
            .map(|i| {
                let ty = self.ty(depth + 1, true);
                let mut field = json!({"name": format!("f{i}"), "type": ty});
                // A null default on a union that starts with null: the shape of every
                // optional Salesforce field.
                if field["type"].as_array().and_then(|b| b.first()) == Some(&json!("null")) {
                    field["default"] = Value::Null;
                }
                field
            })
            .collect();
        json!({"type": "record", "name": name, "fields": fields})
    }

    fn ty(&mut self, depth: usize, union_ok: bool) -> Value {
        let pick = self.input.byte();
        let pick = if depth >= GEN_MAX_DEPTH {
            pick % 8
        } else {
            pick % 16
        };
        match pick {
            0 => json!("null"),
            1 => json!("boolean"),
            2 => json!("int"),
            3 => json!("long"),
            4 => json!("float"),
            5 => json!("double"),
            6 => json!("bytes"),
            7 => json!("string"),
            8 => {
                let name = self.fresh_name("E");
                let n = 1 + usize::from(self.input.byte() % 4);
                let symbols: Vec<String> = (0..n).map(|i| format!("S{i}")).collect();
                json!({"type": "enum", "name": name, "symbols": symbols})
            }
            9 => {
                let name = self.fresh_name("X");
                let size = self.input.byte() % 17;
                json!({"type": "fixed", "name": name, "size": size})
            }
            10 => json!({"type": "array", "items": self.ty(depth + 1, true)}),
            11 => json!({"type": "map", "values": self.ty(depth + 1, true)}),
            12 if union_ok => {
                let n = 1 + self.input.byte() % 3;
                let branches: Vec<Value> = (0..n).map(|_| self.ty(depth, false)).collect();
                Value::Array(branches)
            }
            13 => self.record(depth),
            14 if !self.named.is_empty() => {
                let i = usize::from(self.input.byte()) % self.named.len();
                json!(self.named[i].clone())
            }
            15 => match self.input.byte() % 4 {
                0 => json!({"type": "int", "logicalType": "date"}),
                1 => json!({"type": "long", "logicalType": "timestamp-millis"}),
                2 => json!({"type": "string", "logicalType": "uuid"}),
                _ => json!({"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}),
            },
            _ => json!("string"),
        }
    }
}

/// Whether the reference decoder may be compared with ours for this schema. apache-avro
/// decodes logical types into typed values (a `uuid` string must parse as a UUID), while
/// the validator checks them as their base type on purpose, so schemas that mention a
/// logical type are left out of the comparison.
fn comparable(schema: &ParsedSchema) -> bool {
    !schema.json().contains("logicalType")
}

/// Rejections apache-avro must share: an enum or union index out of range, a string that
/// is not UTF-8, or bytes left over after the datum. Truncation is left out: apache-avro
/// 0.22 decodes a string or union cut short by the end of the input as `null` instead of
/// failing (found by this target, `fuzz/regressions/avro_validate/reference-*`). The
/// validator's other rejections are deliberate strictness (boolean bytes, overlong
/// varints, block sizes, nesting and zero-width caps) that apache-avro does not share.
fn undecodable(e: &PayloadError) -> bool {
    matches!(
        e,
        PayloadError::InvalidUtf8 { .. }
            | PayloadError::EnumIndexOutOfRange { .. }
            | PayloadError::UnionIndexOutOfRange { .. }
            | PayloadError::TrailingBytes { .. }
    )
}

/// Stack for the reference decoder: apache-avro recurses several frames per nesting level
/// (union, reference, record), which a payload at the validator's [`MAX_DEPTH`] overflows
/// in a 2 MiB debug-build test thread.
///
/// [`MAX_DEPTH`]: crate::schema::validate::MAX_DEPTH
const REFERENCE_STACK_BYTES: usize = 64 * 1024 * 1024;

/// [`ParsedSchema::reference_decode`] on a thread with [`REFERENCE_STACK_BYTES`] of stack.
fn reference(schema: &ParsedSchema, payload: &[u8]) -> Result<usize, String> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .stack_size(REFERENCE_STACK_BYTES)
            .spawn_scoped(scope, || schema.reference_decode(payload));
        match worker.map(|w| w.join()) {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(e) => panic!("cannot start the reference decoder's thread: {e}"),
        }
    })
}

/// Validates `payload`, checks the walk stayed inside its step budget, and checks the
/// verdict against the other readers of the crate.
fn check_payload(schema: &ParsedSchema, payload: &[u8]) {
    match check_steps(schema, payload) {
        Ok(()) => {
            // The CLI's decoder runs after the validator and must read what it accepted.
            let value = match schema.decode_to_json(payload) {
                Ok(v) => v,
                Err(e) => panic!("validated payload does not decode to JSON: {e}"),
            };
            if comparable(schema) {
                match reference(schema, payload) {
                    Ok(n) if n == payload.len() => {}
                    Ok(n) => panic!(
                        "validator accepted {} bytes, apache-avro's datum ends at {n}",
                        payload.len()
                    ),
                    Err(e) => panic!("validator accepted a payload apache-avro rejects: {e}"),
                }
            }
            if let Ok(again) = schema.encode_json(&value, &json_defaults())
                && let Err(e) = schema.validate(&again)
            {
                panic!("encode_json output fails validation: {e}");
            }
        }
        Err(e) => {
            if comparable(schema)
                && undecodable(&e)
                && let Ok(n) = reference(schema, payload)
            {
                assert!(
                    n < payload.len(),
                    "validator rejected ({e}) a payload apache-avro decodes whole"
                );
            }
        }
    }
}

/// Validates `payload` and fails when the walk used its whole step budget: the budget is
/// a proven bound (see [`step_budget`]), so reaching it means validation is no longer
/// linear in the payload, which is a finding even when nothing crashes.
fn check_steps(schema: &ParsedSchema, payload: &[u8]) -> Result<(), PayloadError> {
    let (verdict, steps) = schema.validate_counting(payload);
    let budget = step_budget(payload.len());
    assert!(
        steps < budget && !matches!(verdict, Err(PayloadError::TooCostly { .. })),
        "validating {} bytes took {steps} steps, the budget is {budget}",
        payload.len()
    );
    verdict
}

/// Builds schemas whose named types are reused many times, the shape that makes a naive
/// walk exponential: a chain of records where each may use earlier ones several times,
/// directly, in unions, arrays and maps, next to zero-byte types (`null`, `fixed` of size
/// 0) and types that take bytes.
fn reuse_schema(input: &mut Input<'_>) -> String {
    let levels = 1 + usize::from(input.byte() % 48);
    let mut defs: Vec<String> = Vec::new();
    let pick_earlier = |input: &mut Input<'_>, i: usize| -> String {
        format!("R{}", i - 1 - usize::from(input.byte()) % i)
    };
    for i in 0..levels {
        let n = 1 + usize::from(input.byte() % 4);
        let fields: Vec<String> = (0..n)
            .map(|f| {
                let ty = match (input.byte() % 10, i) {
                    (0..=3, i) if i > 0 => format!("\"{}\"", pick_earlier(input, i)),
                    (4, i) if i > 0 => format!("[\"null\",\"{}\"]", pick_earlier(input, i)),
                    (5, i) if i > 0 => format!(
                        "{{\"type\":\"array\",\"items\":\"{}\"}}",
                        pick_earlier(input, i)
                    ),
                    (6, i) if i > 0 => format!(
                        "{{\"type\":\"map\",\"values\":\"{}\"}}",
                        pick_earlier(input, i)
                    ),
                    (7, _) => format!("{{\"type\":\"fixed\",\"name\":\"Z{i}_{f}\",\"size\":0}}"),
                    (8, _) => "[\"null\",\"int\"]".to_owned(),
                    _ => "\"null\"".to_owned(),
                };
                format!("{{\"name\":\"f{f}\",\"type\":{ty}}}")
            })
            .collect();
        defs.push(format!(
            "{{\"name\":\"d{i}\",\"type\":{{\"type\":\"record\",\"name\":\"R{i}\",\"fields\":[{}]}}}}",
            fields.join(",")
        ));
    }
    format!(
        "{{\"type\":\"record\",\"name\":\"Top\",\"fields\":[{}]}}",
        defs.join(",")
    )
}

/// Target `schema_walk`: a schema that reuses named types heavily (generated, or any
/// schema of [`schema_from`]), then a payload. Fails when validation reaches its step
/// budget, when a schema that passes the registration caps decodes to more values than
/// the JSON decoder allows, or on anything [`check_payload`] checks.
pub fn schema_walk(data: &[u8]) {
    let mut input = Input::new(data);
    let schema = if input.byte().is_multiple_of(4) {
        schema_from(&mut input)
    } else {
        ParsedSchema::parse(&reuse_schema(&mut input)).ok()
    };
    let Some(schema) = schema else {
        return;
    };
    let payload = input.rest();
    if schema.check_limits(&SchemaLimits::default()).is_err() {
        // Not registrable, but a stored schema of an older version could be like it:
        // validation must stay linear all the same. Decoding it may hit the JSON value
        // cap, which is its bound.
        check_steps(&schema, payload).ok();
        return;
    }
    check_payload(&schema, payload);
}

/// Target `avro_validate`: a schema from the input (fixed, generated or text), the rest
/// of the input as its payload.
pub fn avro_validate(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(schema) = schema_from(&mut input) else {
        return;
    };
    check_payload(&schema, input.rest());
}

/// Checks what parsing promises about a schema that parsed.
fn check_parsed(schema: &ParsedSchema) {
    let id = schema.id();
    assert_eq!(
        id,
        &schema_id_of(schema.canonical_form()),
        "id is not the md5 of the form"
    );
    assert_eq!(id.as_str().len(), 22, "schema id {id} is not 22 characters");
    assert!(!schema.record_name().is_empty(), "record without a name");
    let _ = schema.field_names();
    // The Parsing Canonical Form is itself a schema with the same form (and so the same
    // id): a client that registers the form it got back must get the same schema.
    match ParsedSchema::parse(schema.canonical_form()) {
        Ok(again) => assert_eq!(
            again.canonical_form(),
            schema.canonical_form(),
            "canonical form is not a fixed point"
        ),
        Err(e) => panic!(
            "canonical form {} does not parse: {e}",
            schema.canonical_form()
        ),
    }
    // Every schema reads its own data.
    if let Err(e) = compat::check_backward(schema, schema) {
        panic!("schema is not backward compatible with itself: {e}");
    }
}

/// Target `schema_register`: schema JSON text (up to a NUL) through the Admin API's parse
/// path, then a second text as the previous version for the compatibility check.
pub fn schema_register(data: &[u8]) {
    let mut input = Input::new(data);
    let first = String::from_utf8_lossy(input.until_nul()).into_owned();
    let second = String::from_utf8_lossy(input.rest()).into_owned();
    let Ok(new) = Broker::parse_schema_with(&first, &SchemaLimits::default()) else {
        return;
    };
    check_parsed(&new);
    let _ = new.validate(&[]);
    if let Ok(old) = ParsedSchema::parse(&second) {
        check_parsed(&old);
        let _ = compat::check_backward(&new, &old);
        let _ = compat::check_backward(&old, &new);
    }
}

/// Target `replay_id`: decoding a client's replay id; what decodes encodes back to the
/// same bytes and names the same offset.
pub fn replay_id(data: &[u8]) {
    let Ok(id) = ReplayId::decode(data) else {
        assert_ne!(data.len(), REPLAY_ID_LEN, "an 8-byte replay id was refused");
        return;
    };
    assert_eq!(id.to_bytes().as_slice(), data, "encode(decode(x)) != x");
    assert_eq!(ReplayId::from(id.offset()), id, "offset round trip");
    assert_eq!(
        id.to_string().len(),
        2 * REPLAY_ID_LEN,
        "display is not hex"
    );
    assert_eq!(ReplayId::from(Offset(id.offset().0)).offset(), id.offset());
}

/// Target `filter_parse`: channel member filter text (UTF-8, lossily) through the filter
/// parser; what parses prints a canonical text that parses to the same filter and prints
/// the same again, and its field list is the reparse's.
pub fn filter_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(filter) = eventbus_filter::parse(&text) else {
        return;
    };
    let printed = filter.to_string();
    let again = match eventbus_filter::parse(&printed) {
        Ok(f) => f,
        Err(e) => panic!("canonical text {printed:?} of {text:?} does not parse: {e}"),
    };
    assert_eq!(again, filter, "reparse of {printed:?} differs");
    assert_eq!(again.to_string(), printed, "canonical text is not stable");
    assert_eq!(again.fields(), filter.fields(), "field lists differ");
}

/// Target `topics_folder`: a relative path (up to a NUL) and file contents through the
/// topics-folder parser.
pub fn topics_folder(data: &[u8]) {
    use std::os::unix::ffi::OsStrExt as _;
    let mut input = Input::new(data);
    let rel = Path::new(std::ffi::OsStr::from_bytes(input.until_nul()));
    let Ok(json) = std::str::from_utf8(input.rest()) else {
        return;
    };
    let Ok(file) = parse_topic_file(rel, json, PathBuf::from(rel)) else {
        return;
    };
    let name = file.name.as_str();
    assert!(
        name.starts_with('/'),
        "topic name {name:?} without a leading /"
    );
    assert!(
        TopicName::parse(name).is_ok(),
        "topic name {name:?} does not parse again"
    );
    match ParsedSchema::parse(json) {
        Ok(direct) => assert_eq!(direct.id(), file.schema.id()),
        Err(e) => panic!("the topics folder accepted a schema the Admin API rejects: {e}"),
    }
    check_parsed(&file.schema);
}

/// Whether `v` holds an object with exactly one key, which the JSON encoder may read as
/// the Avro JSON form of a union branch (`{"long": 5}`): such values need not survive a
/// second round trip (documented in `schema::json`).
fn has_single_key_object(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.len() == 1 || m.values().any(has_single_key_object),
        Value::Array(a) => a.iter().any(has_single_key_object),
        _ => false,
    }
}

/// JSON equality where numbers compare by value (`3` and `3.0` are the same number: a
/// union with `int` and `double` branches may pick either).
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_json(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Target `json_to_avro`: a schema from the input, then JSON text through the CLI's
/// encoder. What encodes must validate and decode, and decoding is stable.
pub fn json_to_avro(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(schema) = schema_from(&mut input) else {
        return;
    };
    let Ok(value) = serde_json::from_slice::<Value>(input.rest()) else {
        return;
    };
    let Ok(bytes) = schema.encode_json(&value, &json_defaults()) else {
        return;
    };
    if let Err(e) = schema.validate(&bytes) {
        panic!("encode_json output fails validation: {e}");
    }
    if comparable(&schema) {
        match reference(&schema, &bytes) {
            Ok(n) => assert_eq!(n, bytes.len(), "apache-avro reads a shorter datum"),
            Err(e) => panic!("apache-avro cannot read encode_json output: {e}"),
        }
    }
    let decoded = match schema.decode_to_json(&bytes) {
        Ok(v) => v,
        Err(e) => panic!("encode_json output does not decode: {e}"),
    };
    if has_single_key_object(&decoded) {
        return;
    }
    let again = match schema.encode_json(&decoded, &json_defaults()) {
        Ok(b) => b,
        Err(e) => panic!("decoded JSON {decoded} does not encode again: {e}"),
    };
    match schema.decode_to_json(&again) {
        Ok(v) => assert!(
            same_json(&v, &decoded),
            "round trip changed the value: {decoded} became {v}"
        ),
        Err(e) => panic!("re-encoded JSON does not decode: {e}"),
    }
}

// ---- the stream target ----

/// A request body holding `frames` as gRPC length-prefixed messages, the bytes the
/// transport hands to tonic.
fn grpc_body(messages: &[&[u8]]) -> Bytes {
    let mut out = BytesMut::new();
    for m in messages {
        out.put_u8(0); // not compressed
        out.put_u32(u32::try_from(m.len()).unwrap_or(u32::MAX));
        out.put_slice(m);
    }
    out.freeze()
}

/// A `tonic::Streaming` of `T` decoded from raw body bytes, as the server sees a client
/// stream that sent them and half-closed.
fn streaming<T>(body: Bytes) -> Streaming<T>
where
    T: prost::Message + Default + Send + 'static,
{
    let mut codec = tonic_prost::ProstCodec::<T, T>::default();
    Streaming::new_request(
        codec.decoder(),
        http_body_util::Full::new(body),
        None,
        Some(MAX_MESSAGE_BYTES),
    )
}

/// Statuses our status module builds carry an `error-code` trailer; for those, client
/// input must never produce `INTERNAL` or `UNKNOWN` (the in-memory log cannot fail).
fn check_status(st: &Status) {
    if st.metadata().get(status::ERROR_CODE_KEY).is_some() {
        assert!(
            !matches!(st.code(), Code::Internal | Code::Unknown),
            "client input caused {st:?}"
        );
    }
}

/// What one stream-target run saw, checked at the end against the log.
#[derive(Default)]
struct Tally {
    /// Events acknowledged with a replay id.
    acked: u64,
    /// Events delivered to subscribers.
    delivered: u64,
}

fn check_publish_response(resp: &pb::PublishResponse, sent: Option<usize>, tally: &mut Tally) {
    if let Some(n) = sent {
        assert_eq!(resp.results.len(), n, "one result per event");
    }
    for r in &resp.results {
        match &r.error {
            None => {
                assert!(
                    ReplayId::decode(&r.replay_id).is_ok(),
                    "acknowledged event without a replay id"
                );
                assert!(!r.correlation_key.is_empty(), "ack without correlation key");
                tally.acked += 1;
            }
            Some(_) => assert!(r.replay_id.is_empty(), "failed event with a replay id"),
        }
    }
}

/// Credit granted by a request stream, as the subscription counts it.
fn granted(requests: &[pb::FetchRequest]) -> u64 {
    requests
        .iter()
        .map(|r| u64::try_from(r.num_requested.max(0)).unwrap_or(0))
        .sum()
}

async fn drain<T, S>(mut stream: S, mut each: impl FnMut(T))
where
    S: tokio_stream::Stream<Item = Result<T, Status>> + Unpin,
{
    let mut n = 0;
    while let Some(item) = stream.next().await {
        n += 1;
        assert!(n <= MAX_RESPONSES, "a response stream does not end");
        match item {
            Ok(v) => each(v),
            Err(st) => {
                check_status(&st);
                break;
            }
        }
    }
}

/// Runs one call with the hang deadline.
async fn bounded<F: std::future::Future<Output = ()>>(what: &str, f: F) {
    if tokio::time::timeout(CALL_DEADLINE, f).await.is_err() {
        panic!("{what} did not finish within {CALL_DEADLINE:?} of its request stream ending");
    }
}

/// Decodes `bytes` as a sequence of length-prefixed protobuf messages of `T`, keeping
/// the raw bytes of each (so undecodable ones still reach tonic's decoder).
fn chunks<'a>(input: &mut Input<'a>) -> Vec<&'a [u8]> {
    let n = input.byte() % 8;
    (0..n)
        .map(|_| {
            let len = usize::from(input.u16()) % (MAX_CHUNK + 1);
            input.take(len)
        })
        .collect()
}

async fn call_subscribe(
    svc: &PubSubService,
    msgs: &[&[u8]],
    raw: Option<&[u8]>,
    tally: &mut Tally,
) {
    let body = raw.map_or_else(|| grpc_body(msgs), Bytes::copy_from_slice);
    let decoded: Vec<pb::FetchRequest> = msgs
        .iter()
        .filter_map(|m| prost::Message::decode(*m).ok())
        .collect();
    let credit = if raw.is_some() {
        u64::MAX
    } else {
        granted(&decoded)
    };
    match svc.subscribe(Request::new(streaming(body))).await {
        Err(st) => check_status(&st),
        Ok(resp) => {
            let mut delivered = 0u64;
            let mut last: Option<Offset> = None;
            drain(resp.into_inner(), |r: pb::FetchResponse| {
                assert!(r.pending_num_requested >= 0, "negative pending credit");
                assert!(
                    ReplayId::decode(&r.latest_replay_id).is_ok(),
                    "bad latest_replay_id"
                );
                for e in &r.events {
                    let at = match ReplayId::decode(&e.replay_id) {
                        Ok(id) => id.offset(),
                        Err(_) => panic!("delivered event without a replay id"),
                    };
                    assert!(last.is_none_or(|l| at > l), "events out of order");
                    last = Some(at);
                }
                delivered += r.events.len() as u64;
            })
            .await;
            assert!(
                delivered <= credit,
                "delivered {delivered} events on {credit} credit"
            );
            tally.delivered += delivered;
        }
    }
}

async fn call_publish_stream(
    svc: &PubSubService,
    msgs: &[&[u8]],
    raw: Option<&[u8]>,
    tally: &mut Tally,
) {
    let body = raw.map_or_else(|| grpc_body(msgs), Bytes::copy_from_slice);
    match svc.publish_stream(Request::new(streaming(body))).await {
        Err(st) => check_status(&st),
        Ok(resp) => {
            drain(resp.into_inner(), |r: pb::PublishResponse| {
                check_publish_response(&r, None, tally);
            })
            .await;
        }
    }
}

async fn call_managed(svc: &PubSubService, msgs: &[&[u8]]) {
    let body = grpc_body(msgs);
    match svc
        .managed_subscribe(Request::new(streaming::<pb::ManagedFetchRequest>(body)))
        .await
    {
        Err(st) => check_status(&st),
        Ok(resp) => drain(resp.into_inner(), |_: pb::ManagedFetchResponse| {}).await,
    }
}

async fn run_calls(svc: &PubSubService, broker: &Broker, data: &[u8]) -> Tally {
    let mut input = Input::new(data);
    let mut tally = Tally::default();
    while !input.is_empty() {
        match input.byte() % 8 {
            0 => {
                let msgs = chunks(&mut input);
                bounded("Subscribe", call_subscribe(svc, &msgs, None, &mut tally)).await;
            }
            1 => {
                let msgs = chunks(&mut input);
                bounded(
                    "PublishStream",
                    call_publish_stream(svc, &msgs, None, &mut tally),
                )
                .await;
            }
            2 => {
                let msgs = chunks(&mut input);
                bounded("ManagedSubscribe", call_managed(svc, &msgs)).await;
            }
            3 => {
                let len = usize::from(input.u16()) % (MAX_CHUNK + 1);
                let Ok(req) = <pb::PublishRequest as prost::Message>::decode(input.take(len))
                else {
                    continue;
                };
                let n = req.events.len();
                bounded("Publish", async {
                    match svc.publish(Request::new(req)).await {
                        Ok(r) => check_publish_response(r.get_ref(), Some(n), &mut tally),
                        Err(st) => check_status(&st),
                    }
                })
                .await;
            }
            4 => {
                let len = usize::from(input.byte());
                let topic_name = String::from_utf8_lossy(input.take(len)).into_owned();
                bounded("GetTopic", async {
                    match svc
                        .get_topic(Request::new(pb::TopicRequest { topic_name }))
                        .await
                    {
                        Ok(r) => assert!(!r.get_ref().schema_id.is_empty()),
                        Err(st) => check_status(&st),
                    }
                })
                .await;
            }
            5 => {
                let len = usize::from(input.byte());
                let raw = input.take(len);
                // An empty id asks for the topic's current schema, so the found path is
                // reached without the fuzzer guessing an MD5.
                let schema_id = if raw.is_empty() {
                    broker
                        .topic(ORDER_TOPIC)
                        .ok()
                        .and_then(|t| t.schema_ids.last().map(|s| s.as_str().to_owned()))
                        .unwrap_or_default()
                } else {
                    String::from_utf8_lossy(raw).into_owned()
                };
                bounded("GetSchema", async {
                    match svc
                        .get_schema(Request::new(pb::SchemaRequest { schema_id }))
                        .await
                    {
                        Ok(r) => assert!(!r.get_ref().schema_json.is_empty()),
                        Err(st) => check_status(&st),
                    }
                })
                .await;
            }
            6 => {
                let len = usize::from(input.u16()) % (MAX_CHUNK + 1);
                let raw = input.take(len);
                bounded(
                    "Subscribe (raw body)",
                    call_subscribe(svc, &[], Some(raw), &mut tally),
                )
                .await;
            }
            _ => {
                let len = usize::from(input.u16()) % (MAX_CHUNK + 1);
                let raw = input.take(len);
                bounded(
                    "PublishStream (raw body)",
                    call_publish_stream(svc, &[], Some(raw), &mut tally),
                )
                .await;
            }
        }
    }
    // Nothing acknowledged is lost and nothing unacknowledged is stored: the log holds
    // exactly the acknowledged events (offsets are dense from 1 in a fresh log).
    if let Ok(topic) = broker.topic(ORDER_TOPIC) {
        let latest = broker.bounds(topic.id).map(|b| b.latest.0).unwrap_or(0);
        assert_eq!(
            latest, tally.acked,
            "log holds {latest} events, {} acknowledged",
            tally.acked
        );
    }
    tally
}

/// Small limits so that the edges (full batches, oversize events, credit caps) are
/// reachable with inputs of a few kilobytes.
fn fuzz_broker_config() -> BrokerConfig {
    BrokerConfig {
        max_credit: 100,
        max_batch_events: 8,
        max_response_bytes: 8 * 1024,
        keepalive: Duration::from_secs(60),
        max_event_bytes: 2 * 1024,
        ..BrokerConfig::default()
    }
}

/// Target `service_stream`: the real `PubSubService` over the in-memory log with the
/// example topic provisioned, fed a sequence of calls decoded from the input (Subscribe,
/// PublishStream and ManagedSubscribe streams of raw protobuf messages or raw gRPC body
/// bytes, Publish, GetTopic, GetSchema). Each call's request stream is complete and
/// half-closed, so every call must end; afterwards every stream task must have ended and
/// the log must hold exactly the acknowledged events.
pub fn service_stream(data: &[u8]) {
    run_service_stream(data);
}

/// [`service_stream`], returning what the run saw.
fn run_service_stream(data: &[u8]) -> Tally {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    else {
        panic!("cannot build a current-thread runtime");
    };
    rt.block_on(async {
        let log: SharedLog = Arc::new(MemoryTopicLog::new());
        let broker = match Broker::open(log, fuzz_broker_config(), Arc::new(Metrics::new())).await {
            Ok(b) => b,
            Err(e) => panic!("broker over the memory log: {e}"),
        };
        let (Ok(name), Ok(schema)) = (
            TopicName::parse(ORDER_TOPIC),
            ParsedSchema::parse(ORDER_SCHEMA),
        ) else {
            panic!("the example topic does not parse");
        };
        if let Err(e) = broker.provision(&name, schema).await {
            panic!("provisioning the example topic: {e}");
        }
        let stop = CancellationToken::new();
        let tasks = TaskTracker::new();
        let cfg = ApiConfig {
            publish_stream_window: 4,
            first_request_timeout: Duration::from_secs(60),
            ..ApiConfig::default()
        };
        let svc = PubSubService::new(broker.clone(), cfg, stop.clone(), tasks.clone());
        let tally = run_calls(&svc, &broker, data).await;
        tasks.close();
        if tokio::time::timeout(CALL_DEADLINE, tasks.wait())
            .await
            .is_err()
        {
            panic!("a stream task outlived its client's half-close and drained responses");
        }
        stop.cancel();
        tally
    })
}

/// Encodes one protobuf message for seeds and tests.
fn encode(m: &impl prost::Message) -> Vec<u8> {
    m.encode_to_vec()
}

/// Seed inputs for every target, built from the repo's real schemas and payloads
/// (written to `fuzz/corpus/<target>/` by the `write_seed_corpora` test, ignored by
/// default).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
    let order = ParsedSchema::parse(ORDER_SCHEMA).ok();
    let order_json = json!({"CreatedDate": 1_700_000_000_000_i64, "CreatedById": "005xx",
        "OrderNumber__c": "O-1", "Amount__c": 12.5, "Status__c": null});
    let order_payload = order
        .as_ref()
        .and_then(|s| s.encode_json(&order_json, &json_defaults()).ok())
        .unwrap_or_default();
    let rich_json = json!({"b": true, "i": -3, "l": 1_234_567_890_123_i64, "f": 1.5, "d": "NaN",
        "s": "héllo", "by": "\u{00ff}\u{0000}", "e": "B", "fx": "abcd",
        "a": [null, 7, "x"], "m": {"k": {"x": 1, "e2": "C"}}, "u": {"x": 2, "e2": "A"},
        "n": [[null, null], []]});
    let rich_payload = ParsedSchema::parse(RICH_SCHEMA)
        .ok()
        .and_then(|s| s.encode_json(&rich_json, &json_defaults()).ok())
        .unwrap_or_default();
    let list_json = json!({"v": 1, "next": {"v": 2, "next": null}});
    let list_payload = ParsedSchema::parse(LIST_SCHEMA)
        .ok()
        .and_then(|s| s.encode_json(&list_json, &json_defaults()).ok())
        .unwrap_or_default();

    // avro_validate and json_to_avro: fixed schemas with payload / JSON, text schemas.
    for (i, (payload, value)) in [
        (&order_payload, &order_json),
        (&rich_payload, &rich_json),
        (&list_payload, &list_json),
    ]
    .into_iter()
    .enumerate()
    {
        let idx = u8::try_from(i).unwrap_or(0);
        let mut v = vec![0, idx];
        v.extend_from_slice(payload);
        out.push(("avro_validate", v));
        let mut j = vec![0, idx];
        j.extend_from_slice(value.to_string().as_bytes());
        out.push(("json_to_avro", j));
        let mut t = vec![3];
        t.extend_from_slice(FIXED_SCHEMAS[i].as_bytes());
        t.push(0);
        t.extend_from_slice(payload);
        out.push(("avro_validate", t));
    }
    out.push((
        "avro_validate",
        vec![1, 4, 3, 7, 10, 7, 12, 0, 2, 3, 2, 6, 246, 1, 2, 0],
    ));
    out.push((
        "json_to_avro",
        b"\x01\x03\x03\x07\x0a\x07{\"f0\":5,\"f1\":\"a\",\"f2\":[\"b\"]}".to_vec(),
    ));

    // schema_register: the example schema and its previous version.
    let v1 = ORDER_SCHEMA.replace(
        ",\n    { \"name\": \"Status__c\", \"type\": [\"null\", \"string\"], \"default\": null }",
        "",
    );
    let mut reg = ORDER_SCHEMA.as_bytes().to_vec();
    reg.push(0);
    reg.extend_from_slice(v1.as_bytes());
    out.push(("schema_register", reg));
    out.push(("schema_register", RICH_SCHEMA.as_bytes().to_vec()));
    let mut lst = LIST_SCHEMA.as_bytes().to_vec();
    lst.push(0);
    lst.extend_from_slice(RICH_SCHEMA.as_bytes());
    out.push(("schema_register", lst));

    // replay_id: ids the server issues.
    out.push(("replay_id", ReplayId::from(Offset(1)).to_bytes().to_vec()));
    out.push((
        "replay_id",
        ReplayId::from(Offset(u64::MAX)).to_bytes().to_vec(),
    ));
    out.push(("replay_id", b"123".to_vec()));

    // topics_folder: the example folder's file.
    let mut tf = b"event/Order_Event__e.avsc\0".to_vec();
    tf.extend_from_slice(ORDER_SCHEMA.as_bytes());
    out.push(("topics_folder", tf));
    let mut tf2 = b"data/Nested/Rich.avsc\0".to_vec();
    tf2.extend_from_slice(RICH_SCHEMA.as_bytes());
    out.push(("topics_folder", tf2));

    // service_stream: publish, then read back; a publish stream; a bad subscription.
    let event = pb::ProducerEvent {
        id: String::new(),
        schema_id: order
            .as_ref()
            .map(|s| s.id().as_str().to_owned())
            .unwrap_or_default(),
        payload: order_payload.into(),
        headers: Vec::new(),
    };
    let publish = pb::PublishRequest {
        topic_name: ORDER_TOPIC.to_owned(),
        events: vec![event.clone(), event.clone()],
        auth_refresh: String::new(),
    };
    let fetch = |preset: i32, n: i32, replay: Vec<u8>| pb::FetchRequest {
        topic_name: ORDER_TOPIC.to_owned(),
        replay_preset: preset,
        replay_id: replay.into(),
        num_requested: n,
        auth_refresh: String::new(),
    };
    let mut s = Vec::new();
    let p = encode(&publish);
    s.push(3);
    s.extend_from_slice(&u16::try_from(p.len()).unwrap_or(0).to_le_bytes());
    s.extend_from_slice(&p);
    let stream_of = |op: u8, msgs: &[Vec<u8>]| {
        let mut v = vec![op, u8::try_from(msgs.len()).unwrap_or(0)];
        for m in msgs {
            v.extend_from_slice(&u16::try_from(m.len()).unwrap_or(0).to_le_bytes());
            v.extend_from_slice(m);
        }
        v
    };
    s.extend(stream_of(
        1,
        &[
            p.clone(),
            encode(&pb::PublishRequest {
                topic_name: String::new(),
                events: vec![event],
                auth_refresh: String::new(),
            }),
        ],
    ));
    s.extend(stream_of(
        0,
        &[
            encode(&fetch(1, 3, Vec::new())),
            encode(&fetch(0, 2, Vec::new())),
        ],
    ));
    s.extend(stream_of(
        0,
        &[encode(&fetch(
            2,
            5,
            ReplayId::from(Offset(1)).to_bytes().to_vec(),
        ))],
    ));
    s.extend([4, 21]);
    s.extend_from_slice(ORDER_TOPIC.as_bytes());
    s.extend([5, 0]);
    out.push(("service_stream", s));
    let mut bad = stream_of(0, &[encode(&fetch(2, 1, b"nope".to_vec()))]);
    bad.extend(stream_of(2, &[encode(&pb::ManagedFetchRequest::default())]));
    out.push(("service_stream", bad));
    let raw = grpc_body(&[&encode(&fetch(1, 10, Vec::new()))]);
    let mut r = vec![6];
    r.extend_from_slice(&u16::try_from(raw.len()).unwrap_or(0).to_le_bytes());
    r.extend_from_slice(&raw);
    out.push(("service_stream", r));
    for filter in [
        "City__c = 'San Francisco'",
        "NumberOfEmployees > 1000 AND (Industry = 'Agriculture' OR Industry = 'Banking')",
        "ChangeEventHeader.changeType IN ('UPDATE', 'CREATE') AND NOT IsActive__c = false",
        "LastViewedDate > 2021-11-03T09:30:11-08:00 OR OpenTime__c >= 14:30:00Z",
    ] {
        out.push(("filter_parse", filter.as_bytes().to_vec()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A target body.
    type Target = fn(&[u8]);

    /// Every target, by the name of its corpus folder.
    const TARGETS: [(&str, Target); 8] = [
        ("avro_validate", avro_validate),
        ("schema_walk", schema_walk),
        ("schema_register", schema_register),
        ("replay_id", replay_id),
        ("topics_folder", topics_folder),
        ("json_to_avro", json_to_avro),
        ("service_stream", service_stream),
        ("filter_parse", filter_parse),
    ];

    fn files(dir: &Path) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut v: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    }

    /// Replays `fuzz/corpus/<target>/` (must exist and not be empty) and
    /// `fuzz/regressions/<target>/` (fixed crashers) through each target: the CI
    /// regression run of the fuzz campaigns, no cargo-fuzz needed.
    #[test]
    fn fuzz_corpora_and_regressions_replay_clean() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (name, target) in TARGETS {
            let corpus = files(&root.join("corpus").join(name));
            assert!(
                !corpus.is_empty(),
                "fuzz/corpus/{name}/ is missing or empty"
            );
            let regressions = files(&root.join("regressions").join(name));
            for path in corpus.iter().chain(&regressions) {
                let data = match std::fs::read(path) {
                    Ok(d) => d,
                    // A running campaign replaces corpus files as it shrinks them.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => panic!("cannot read {}: {e}", path.display()),
                };
                if std::env::var_os("FUZZ_REPLAY_VERBOSE").is_some() {
                    eprintln!("{name}: {}", path.display());
                }
                let outcome = std::panic::catch_unwind(|| target(&data));
                assert!(outcome.is_ok(), "{name}: {} fails", path.display());
            }
            eprintln!(
                "{name}: {} corpus files, {} regressions replayed",
                corpus.len(),
                regressions.len()
            );
        }
    }

    /// The seeds are valid inputs that reach the deep paths: the payload seeds validate,
    /// the stream seed publishes and reads back.
    #[test]
    fn seeds_reach_the_success_paths() {
        let seeds = seeds();
        for (name, data) in &seeds {
            let target = TARGETS
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| *t)
                .expect("seed for a known target");
            target(data);
        }
        let order = ParsedSchema::parse(ORDER_SCHEMA).expect("order schema");
        let (_, first) = seeds
            .iter()
            .find(|(n, _)| *n == "avro_validate")
            .expect("an avro seed");
        assert_eq!(order.validate(&first[2..]), Ok(()));
        let (_, stream) = seeds
            .iter()
            .find(|(n, _)| *n == "service_stream")
            .expect("a stream seed");
        let tally = run_service_stream(stream);
        // Publish (2) and PublishStream (2, then 1 from a request that leaves the topic
        // blank) are acknowledged; the EARLIEST subscription reads 3 + 2 of them.
        assert_eq!(tally.acked, 5);
        assert!(tally.delivered >= 5, "delivered {}", tally.delivered);
    }

    /// Writes the seeds to `fuzz/corpus/<target>/seed-N`; run by hand before a campaign:
    /// `cargo test --lib fuzzing::tests::write_seed_corpora -- --ignored`.
    #[test]
    #[ignore = "writes files into fuzz/corpus; run by hand"]
    fn write_seed_corpora() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut counts = std::collections::HashMap::new();
        for (name, data) in seeds() {
            let n = counts.entry(name).or_insert(0);
            *n += 1;
            let dir = root.join(name);
            std::fs::create_dir_all(&dir).expect("mkdir");
            std::fs::write(dir.join(format!("seed-{n}")), data).expect("write");
        }
    }
}
