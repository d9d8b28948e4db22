//! Payload validation: checks that bytes are exactly one Avro binary datum of a schema.
//!
//! Owns: the compiled form of a schema (`Program`: a flat node table with named
//! references resolved to indexes) and the byte walk that checks a payload against it,
//! plus [`PayloadError`] and the caps that keep hostile payloads cheap. The primitive reads
//! (varints, lengths, strings, block headers) are `schema::binary`'s; the walk decides
//! which to make and names the field in its errors.
//! Must not: decode into values, allocate on the success path, or trust any length or
//! count in the payload before checking it against the bytes that are actually left.
//!
//! Why a walk of our own rather than apache-avro's decoder: the decoder builds a `Value`
//! tree (allocation per field) and sizes vectors from counts found in the payload. The
//! walk only moves a cursor, so its cost is bounded by the payload length:
//! - a string/bytes length must fit in the bytes left;
//! - an array or map block of `n` items whose type needs at least `m ≥ 1` bytes is
//!   rejected up front unless `n × m` fits in the bytes left;
//! - items of a type that encodes in zero bytes (`null`, an empty record) cost nothing to
//!   walk but would make a consumer's decoder allocate, so a payload may declare at most
//!   [`MAX_ZERO_WIDTH_ITEMS`] of them;
//! - records, arrays and maps may nest at most [`MAX_DEPTH`] deep, so a recursive schema
//!   (a linked list) cannot exhaust the stack;
//! - a varint longer than 10 bytes (5 for an `int`) is rejected.
//!
//! The checks are the binary format's, and a little stricter than Java's reader where that
//! reader silently accepts garbage: a boolean byte must be 0 or 1, an `int` must fit in 32
//! bits, a long must fit in 64, and a block's declared byte size must match its items.
//! Logical types do not change the encoding, so they are checked as their base type
//! (a `uuid` string only needs to be UTF-8).
//!
//! Speed (measured, release build, on the shared 2-core dev VM): a 975-byte
//! Salesforce-style record (40 top-level fields: longs, nullable doubles/strings/booleans,
//! an array of 20 strings, a map of 8 longs, six nested address records) validates in
//! 0.7–1.1 µs. Most of that is one unpredictable branch per value (the type dispatch);
//! strings take an ASCII fast path before the full UTF-8 check. At [`MAX_DEPTH`] the walk
//! needs under 32 KiB of stack (under 128 KiB unoptimised).

use std::collections::HashMap;

use apache_avro::Schema;

use super::FieldAt;
use super::binary::{Block, ReadError, Reader};
use super::kinds::Base;

/// Deepest nesting of records, arrays and maps a payload may have (the top-level record is
/// level 1). Salesforce schemas nest three or four levels; the cap exists so a recursive
/// schema cannot be used to exhaust the stack.
pub const MAX_DEPTH: usize = 64;

/// Most array items of a zero-byte type (`null`, an empty record, `fixed` of size 0) one
/// payload may declare. Such items take no bytes, so the payload size does not bound their
/// count, yet every consumer's decoder allocates one value per item.
pub const MAX_ZERO_WIDTH_ITEMS: u64 = 65_536;

/// Why a payload is not one datum of its schema. Messages name the field path
/// (`Address__c.City`, `Tags__c[3]`, `Attributes__c["color"]`) and the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PayloadError {
    /// The payload ended inside a varint (an int, long, length, count or index).
    #[error("{}: the payload ends inside a variable-length integer", at(.field))]
    TruncatedVarint {
        /// Path of the field being read.
        field: String,
    },
    /// The payload ended before a fixed-size value (float, double, boolean, fixed).
    #[error("{}: {what} needs {needed} bytes but only {remaining} are left", at(.field))]
    Truncated {
        /// Path of the field being read.
        field: String,
        /// What was being read, e.g. `a double`.
        what: &'static str,
        /// Bytes the value needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A varint has more bytes than its type allows.
    #[error("{}: a variable-length {what} is longer than {max} bytes", at(.field))]
    VarintTooLong {
        /// Path of the field being read.
        field: String,
        /// `int` or `long`.
        what: &'static str,
        /// The most bytes that type may take.
        max: usize,
    },
    /// A 10-byte varint sets bits beyond the 64th.
    #[error("{}: a variable-length long does not fit in 64 bits", at(.field))]
    LongOverflow {
        /// Path of the field being read.
        field: String,
    },
    /// An `int` (or enum index) varint decodes to a value outside 32 bits.
    #[error("{}: value {value} does not fit in an Avro int (32 bits)", at(.field))]
    IntOutOfRange {
        /// Path of the field being read.
        field: String,
        /// The decoded value.
        value: i64,
    },
    /// A boolean byte other than 0 or 1.
    #[error("{}: boolean byte {byte:#04x} is neither 0 nor 1", at(.field))]
    InvalidBoolean {
        /// Path of the field being read.
        field: String,
        /// The byte found.
        byte: u8,
    },
    /// A negative string/bytes length or block byte size.
    #[error("{}: {what} {length} is negative", at(.field))]
    NegativeLength {
        /// Path of the field being read.
        field: String,
        /// Which length, e.g. `string length`.
        what: &'static str,
        /// The decoded length.
        length: i64,
    },
    /// A string/bytes length or block byte size larger than what is left of the payload.
    #[error("{}: {what} {length} exceeds the {remaining} bytes left in the payload", at(.field))]
    LengthExceedsPayload {
        /// Path of the field being read.
        field: String,
        /// Which length, e.g. `string length`.
        what: &'static str,
        /// The decoded length.
        length: i64,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A string or map key that is not UTF-8.
    #[error("{}: invalid UTF-8 in {what}", at(.field))]
    InvalidUtf8 {
        /// Path of the field being read.
        field: String,
        /// `string` or `map key`.
        what: &'static str,
    },
    /// An enum index outside the symbol list.
    #[error(
        "{}: enum symbol index {index} is out of range (the enum has {symbols} symbols)",
        at(.field)
    )]
    EnumIndexOutOfRange {
        /// Path of the field being read.
        field: String,
        /// The decoded index.
        index: i64,
        /// How many symbols the enum has.
        symbols: usize,
    },
    /// A union branch index outside the union.
    #[error(
        "{}: union branch index {index} is out of range (the union has {branches} branches)",
        at(.field)
    )]
    UnionIndexOutOfRange {
        /// Path of the field being read.
        field: String,
        /// The decoded index.
        index: i64,
        /// How many branches the union has.
        branches: usize,
    },
    /// An array or map block whose item count cannot fit in the bytes left.
    #[error(
        "{}: {what} block of {count} items cannot fit in the {remaining} bytes left in the payload",
        at(.field)
    )]
    BlockTooLarge {
        /// Path of the array or map.
        field: String,
        /// `an array` or `a map`.
        what: &'static str,
        /// The declared item count.
        count: u64,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A block with a declared byte size (negative count form) whose items took a
    /// different number of bytes.
    #[error("{}: {what} block declared {declared} bytes but its items took {actual}", at(.field))]
    BlockSizeMismatch {
        /// Path of the array or map.
        field: String,
        /// `an array` or `a map`.
        what: &'static str,
        /// The declared byte size.
        declared: u64,
        /// Bytes the items actually took.
        actual: usize,
    },
    /// More than [`MAX_ZERO_WIDTH_ITEMS`] zero-byte array items in one payload.
    #[error("{}: more than {limit} zero-byte array items in one payload", at(.field))]
    TooManyItems {
        /// Path of the array.
        field: String,
        /// The cap, [`MAX_ZERO_WIDTH_ITEMS`].
        limit: u64,
    },
    /// Records, arrays and maps nested deeper than [`MAX_DEPTH`].
    #[error("{}: values nest more than {limit} records, arrays and maps deep", at(.field))]
    TooDeep {
        /// Path of the value that went too deep.
        field: String,
        /// The cap, [`MAX_DEPTH`].
        limit: usize,
    },
    /// The walk took more steps than [`step_budget`] allows for the payload's length.
    /// The walk is linear in the payload by construction, so this stops a bug, not a client.
    #[error("the payload took more than {limit} steps to check")]
    TooCostly {
        /// The budget that was reached.
        limit: u64,
    },
    /// Bytes left after the top-level record ended.
    #[error("the payload has {count} bytes left over after the record ended")]
    TrailingBytes {
        /// How many bytes were left.
        count: usize,
    },
}

/// The `field` of every [`PayloadError`] variant that has one, as `Some(field)`: one match
/// for both [`PayloadError::field_slot`] and [`PayloadError::field_slot_mut`], which differ
/// only in how `$error` is borrowed.
macro_rules! field_slot {
    ($error:expr) => {
        match $error {
            PayloadError::TruncatedVarint { field }
            | PayloadError::Truncated { field, .. }
            | PayloadError::VarintTooLong { field, .. }
            | PayloadError::LongOverflow { field }
            | PayloadError::IntOutOfRange { field, .. }
            | PayloadError::InvalidBoolean { field, .. }
            | PayloadError::NegativeLength { field, .. }
            | PayloadError::LengthExceedsPayload { field, .. }
            | PayloadError::InvalidUtf8 { field, .. }
            | PayloadError::EnumIndexOutOfRange { field, .. }
            | PayloadError::UnionIndexOutOfRange { field, .. }
            | PayloadError::BlockTooLarge { field, .. }
            | PayloadError::BlockSizeMismatch { field, .. }
            | PayloadError::TooManyItems { field, .. }
            | PayloadError::TooDeep { field, .. } => Some(field),
            PayloadError::TooCostly { .. } | PayloadError::TrailingBytes { .. } => None,
        }
    };
}

impl PayloadError {
    /// The path of the field the error is in (`Address__c.City`, `Tags__c[3]`), or `None`
    /// for errors about the payload as a whole.
    pub fn field(&self) -> Option<&str> {
        self.field_slot().map(|f| f.as_str())
    }

    fn field_slot(&self) -> Option<&String> {
        field_slot!(self)
    }

    fn field_slot_mut(&mut self) -> Option<&mut String> {
        field_slot!(self)
    }
}

/// Formats a field path for messages: "field `a.b`", or "the record" at the top level.
fn at(field: &str) -> FieldAt<'_> {
    FieldAt {
        path: field,
        top_level: "the record",
        quote: "`",
    }
}

/// Index of a node in [`Program::nodes`]. `u32` keeps nodes small; [`Program::compile`]
/// rejects schemas with more nodes than that (they would be gigabytes of JSON).
type NodeId = u32;

/// One type of the compiled schema. Logical types are compiled to their base type.
#[derive(Debug, Clone, Copy)]
enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed {
        size: usize,
    },
    Enum {
        symbols: usize,
    },
    /// `item_min`: fewest bytes one item can take (`usize::MAX` if no finite encoding).
    Array {
        items: NodeId,
        item_min: usize,
    },
    /// `entry_min`: fewest bytes one entry (key plus value) can take.
    Map {
        values: NodeId,
        entry_min: usize,
    },
    /// Branches are `Program::branches[start..start + len]`.
    Union {
        start: u32,
        len: u32,
    },
    /// Fields are `Program::fields[start..start + len]`. The walk visits only the fields
    /// listed in `Program::walk[walk_start..walk_start + walk_len]` (indexes into
    /// `fields`): those whose type can take bytes. A field of a zero-byte type (`null`,
    /// `fixed` of size 0, records of those) cannot be malformed, so skipping it changes no
    /// verdict, and it is what keeps the walk linear in the payload: without it a schema
    /// of records that reuse a zero-byte record twice per level costs 2^levels steps for
    /// an empty payload.
    Record {
        start: u32,
        len: u32,
        walk_start: u32,
        walk_len: u32,
    },
}

#[derive(Debug)]
struct FieldDef {
    name: Box<str>,
    node: NodeId,
}

/// A schema compiled for validation: a flat node table in which named types are defined
/// once and references (including recursive ones) are node indexes.
///
/// Invariant: every `NodeId` stored in the tables is an index into `nodes`, and every
/// `start..start + len` range is inside its table; [`Program::compile`] only creates ids
/// after pushing the node and ranges after extending the table, so indexing never panics.
#[derive(Debug)]
pub(crate) struct Program {
    nodes: Vec<Node>,
    branches: Vec<NodeId>,
    fields: Vec<FieldDef>,
    /// Per record, the indexes into `fields` the walk visits (see [`Node::Record`]).
    walk: Vec<u32>,
    /// Fewest bytes a value of each node can take (`usize::MAX`: no finite encoding).
    min_sizes: Vec<usize>,
    /// How deep records, arrays and maps nest as the schema is written (references not
    /// followed); the top-level record is 1.
    written_depth: usize,
    root: NodeId,
}

/// Most steps (values checked) the walk may take for a payload of `len` bytes.
///
/// Why it holds: every value the walk checks is one of
/// - a value that reads at least one byte of its own (a number, string, enum, union
///   index, array or map block header): at most `len` of them;
/// - a zero-byte value (`null`, `fixed` of size 0, a record of those): records skip such
///   fields and arrays skip such items, so these are only reached as a union branch or a
///   map value, right after a byte was read, or as the root: at most `len + 1`;
/// - a record that can take bytes: it reads at least one byte below it, through at most
///   [`MAX_DEPTH`] nested records, so each byte-reading value has at most `MAX_DEPTH`
///   such records above it on its own: at most `MAX_DEPTH × len`.
///
/// A walk that fails stops at once, so failing adds at most the values on the current
/// path that have not read a byte yet: at most `MAX_DEPTH` records and the value that
/// went one level too deep.
pub fn step_budget(len: usize) -> u64 {
    let len = len as u64;
    let per_byte = MAX_DEPTH as u64 + 2;
    per_byte
        .saturating_mul(len)
        .saturating_add(MAX_DEPTH as u64 + 2)
}

impl Program {
    /// Compiles a parsed schema.
    ///
    /// # Errors
    /// A reason when a named reference does not resolve (apache-avro's parser already
    /// rejects that, so this is defensive) or the schema is absurdly large.
    pub(crate) fn compile(schema: &Schema) -> Result<Program, String> {
        let mut compiler = Compiler::default();
        let root = compiler.node(schema)?;
        let written_depth = compiler.max_depth;
        let mut program = Program {
            written_depth,
            nodes: compiler.nodes,
            branches: compiler.branches,
            fields: compiler.fields,
            walk: Vec::new(),
            min_sizes: Vec::new(),
            root,
        };
        program.fill_min_sizes();
        program.fill_walk_lists()?;
        Ok(program)
    }

    /// How deep records, arrays and maps nest as written (the top-level record is 1).
    pub(crate) fn written_depth(&self) -> usize {
        self.written_depth
    }

    /// How many types, fields and union branches the compiled schema has: what the
    /// registration caps count.
    pub(crate) fn size(&self) -> usize {
        self.nodes.len() + self.fields.len() + self.branches.len()
    }

    /// The first type that has no finite encoding (it contains itself with no union or
    /// array to end the recursion), by the index of a record field that uses it, if any.
    pub(crate) fn first_unencodable_field(&self) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| self.min_sizes[f.node as usize] == usize::MAX)
            .map(|f| &*f.name)
    }

    /// The largest number of values a zero-byte field expands to when a reader decodes
    /// it (a `null` is one value, a record of `k` nulls `k + 1`), with the field's name.
    /// The walk skips such fields, but every consumer's decoder builds them, so
    /// registration caps this (see `schema::limits`). Saturates at `u64::MAX`.
    pub(crate) fn largest_zero_byte_field(&self) -> Option<(&str, u64)> {
        // Zero-byte records cannot be recursive (a recursive record has no finite, let
        // alone empty, encoding), so a memoised walk over them terminates and visits each
        // node once.
        let mut memo: Vec<Option<u64>> = vec![None; self.nodes.len()];
        let mut best: Option<(&str, u64)> = None;
        for field in &self.fields {
            if self.min_sizes[field.node as usize] != 0 {
                continue;
            }
            let values = self.zero_byte_values(field.node, &mut memo);
            if best.is_none_or(|(_, b)| values > b) {
                best = Some((&field.name, values));
            }
        }
        best
    }

    fn zero_byte_values(&self, id: NodeId, memo: &mut [Option<u64>]) -> u64 {
        if let Some(v) = memo[id as usize] {
            return v;
        }
        // Explicit stack: a chain of nested zero-byte records must not exhaust ours.
        let mut stack = vec![(id, false)];
        while let Some((node, expanded)) = stack.pop() {
            if memo[node as usize].is_some() {
                continue;
            }
            let Node::Record { start, len, .. } = self.nodes[node as usize] else {
                memo[node as usize] = Some(1);
                continue;
            };
            let fields = self.fields_of(start, len);
            if expanded {
                let total = fields.iter().fold(1u64, |acc, f| {
                    acc.saturating_add(memo[f.node as usize].unwrap_or(u64::MAX))
                });
                memo[node as usize] = Some(total);
            } else {
                stack.push((node, true));
                for f in fields {
                    if memo[f.node as usize].is_none() {
                        stack.push((f.node, false));
                    }
                }
            }
        }
        memo[id as usize].unwrap_or(u64::MAX)
    }

    /// Names of the root record's fields, in order (empty if the root is not a record).
    pub(crate) fn root_field_names(&self) -> Vec<String> {
        match self.nodes[self.root as usize] {
            Node::Record { start, len, .. } => self
                .fields_of(start, len)
                .iter()
                .map(|f| f.name.to_string())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Checks that `payload` is exactly one datum of the root type.
    pub(crate) fn validate(&self, payload: &[u8]) -> Result<(), PayloadError> {
        self.validate_counting(payload).0
    }

    /// [`Program::validate`], also returning how many steps the walk took (what
    /// [`step_budget`] bounds; the fuzz targets check the bound).
    pub(crate) fn validate_counting(&self, payload: &[u8]) -> (Result<(), PayloadError>, u64) {
        let budget = step_budget(payload.len());
        let mut walker = Walker {
            program: self,
            reader: Reader::new(payload),
            zero_width_items: 0,
            steps_left: budget,
        };
        let result = walker.value(self.root, 0);
        let steps = budget - walker.steps_left;
        if let Err(failure) = result {
            let mut error = (*failure).into_error(self);
            if let PayloadError::TooCostly { limit } = &mut error {
                *limit = budget;
            }
            return (Err(error), steps);
        }
        if !walker.reader.is_empty() {
            let count = walker.reader.remaining();
            return (Err(PayloadError::TrailingBytes { count }), steps);
        }
        (Ok(()), steps)
    }

    fn fields_of(&self, start: u32, len: u32) -> &[FieldDef] {
        &self.fields[start as usize..start as usize + len as usize]
    }

    fn branches_of(&self, start: u32, len: u32) -> &[NodeId] {
        &self.branches[start as usize..start as usize + len as usize]
    }

    /// Computes each node's minimum encoded size, keeps the table for the registration
    /// checks and stores it on arrays and maps, so the walk can reject impossible block
    /// counts before looping.
    ///
    /// Recursive types make this a least fixpoint of `record = Σ fields` and
    /// `union = 1 + min branch`. It is solved like shortest paths (Knuth's generalisation
    /// of Dijkstra's algorithm): a priority queue hands out nodes smallest size first; a
    /// record is ready when all its fields are settled, a union when its first branch is
    /// (the first settled branch is the smallest). Each edge is looked at once, so a
    /// schema of `n` types settles in `O(n log n)`, whatever the order of its references
    /// (a round-based fixpoint took one round per backward reference: quadratic for a
    /// chain of 32,000 named records). Nodes never settled have no finite encoding.
    fn fill_min_sizes(&mut self) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        const INFINITE: usize = usize::MAX;
        let n = self.nodes.len();
        let mut min = vec![INFINITE; n];
        // parents[child] = the nodes (records, unions) that wait on `child`, one entry per
        // edge, as a flat CSR table built in two passes.
        let mut waiting = vec![0usize; n];
        let mut degree = vec![0u32; n + 1];
        let children = |node: &Node| -> Vec<NodeId> {
            match *node {
                Node::Union { start, len } => self.branches_of(start, len).to_vec(),
                Node::Record { start, len, .. } => {
                    self.fields_of(start, len).iter().map(|f| f.node).collect()
                }
                _ => Vec::new(),
            }
        };
        let mut edges: Vec<(NodeId, NodeId)> = Vec::new();
        let mut heap = BinaryHeap::new();
        for (id, node) in self.nodes.iter().enumerate() {
            let size = match *node {
                Node::Null => Some(0),
                Node::Boolean
                | Node::Int
                | Node::Long
                | Node::Bytes
                | Node::String
                | Node::Enum { .. }
                | Node::Array { .. }
                | Node::Map { .. } => Some(1),
                Node::Float => Some(4),
                Node::Double => Some(8),
                Node::Fixed { size } => Some(size),
                Node::Union { .. } | Node::Record { .. } => None,
            };
            match size {
                Some(size) => heap.push(Reverse((size, id as NodeId))),
                None => {
                    let kids = children(node);
                    waiting[id] = match node {
                        Node::Record { .. } => kids.len(),
                        _ => 1,
                    };
                    if kids.is_empty() {
                        match node {
                            // An empty record takes no bytes.
                            Node::Record { .. } => heap.push(Reverse((0, id as NodeId))),
                            // An empty union has no value at all.
                            _ => waiting[id] = 0,
                        }
                    }
                    for kid in kids {
                        degree[kid as usize] += 1;
                        edges.push((kid, id as NodeId));
                    }
                }
            }
        }
        let mut offsets = vec![0usize; n + 1];
        for i in 0..n {
            offsets[i + 1] = offsets[i] + degree[i] as usize;
        }
        let mut parents = vec![0 as NodeId; edges.len()];
        let mut fill = offsets.clone();
        for (kid, parent) in edges {
            parents[fill[kid as usize]] = parent;
            fill[kid as usize] += 1;
        }
        // Running field sums of records not yet ready.
        let mut partial = vec![0usize; n];
        while let Some(Reverse((size, id))) = heap.pop() {
            let id = id as usize;
            if min[id] != INFINITE {
                continue;
            }
            min[id] = size;
            for &parent in &parents[offsets[id]..offsets[id + 1]] {
                let p = parent as usize;
                if min[p] != INFINITE || waiting[p] == 0 {
                    continue;
                }
                match self.nodes[p] {
                    Node::Union { .. } => {
                        waiting[p] = 0;
                        heap.push(Reverse((size.saturating_add(1), parent)));
                    }
                    _ => {
                        partial[p] = partial[p].saturating_add(size);
                        waiting[p] -= 1;
                        if waiting[p] == 0 {
                            heap.push(Reverse((partial[p], parent)));
                        }
                    }
                }
            }
        }
        for node in &mut self.nodes {
            match node {
                Node::Array { items, item_min } => *item_min = min[*items as usize],
                // Every entry starts with its key's length varint: at least one byte.
                Node::Map { values, entry_min } => {
                    *entry_min = min[*values as usize].saturating_add(1);
                }
                _ => {}
            }
        }
        self.min_sizes = min;
    }

    /// Lists, per record, the fields the walk visits: those whose type can take bytes.
    fn fill_walk_lists(&mut self) -> Result<(), String> {
        for id in 0..self.nodes.len() {
            if let Node::Record { start, len, .. } = self.nodes[id] {
                let walk_start = self.walk.len();
                for i in start..start + len {
                    if self.min_sizes[self.fields[i as usize].node as usize] != 0 {
                        self.walk.push(i);
                    }
                }
                let (walk_start, walk_len) =
                    Compiler::range(walk_start, self.walk.len() - walk_start)?;
                self.nodes[id] = Node::Record {
                    start,
                    len,
                    walk_start,
                    walk_len,
                };
            }
        }
        Ok(())
    }
}

/// Builds a [`Program`] from an apache-avro schema in one depth-first pass, in the same
/// order the parser defined names, so every reference finds its definition (a recursive
/// record is registered before its fields are compiled).
#[derive(Default)]
struct Compiler {
    nodes: Vec<Node>,
    branches: Vec<NodeId>,
    fields: Vec<FieldDef>,
    named: HashMap<String, NodeId>,
    /// Records, arrays and maps around the type being compiled, as written.
    depth: usize,
    /// The deepest `depth` seen.
    max_depth: usize,
}

impl Compiler {
    fn push(&mut self, node: Node) -> Result<NodeId, String> {
        let id = NodeId::try_from(self.nodes.len())
            .map_err(|_| "the schema has too many types to compile".to_owned())?;
        self.nodes.push(node);
        Ok(id)
    }

    /// Converts a table range to the `u32` pair stored on nodes.
    fn range(start: usize, len: usize) -> Result<(u32, u32), String> {
        let too_big = |_| "the schema has too many fields or branches".to_owned();
        Ok((
            u32::try_from(start).map_err(too_big)?,
            u32::try_from(len).map_err(too_big)?,
        ))
    }

    /// Returns the node for a named type already compiled, or registers `node` under `name`.
    fn define(&mut self, name: String, node: Node) -> Result<(NodeId, bool), String> {
        if let Some(&id) = self.named.get(&name) {
            return Ok((id, false));
        }
        let id = self.push(node)?;
        self.named.insert(name, id);
        Ok((id, true))
    }

    /// Compiles a record, array or map's children one level deeper.
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T, String>) -> Result<T, String> {
        self.depth += 1;
        self.max_depth = self.max_depth.max(self.depth);
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn node(&mut self, schema: &Schema) -> Result<NodeId, String> {
        let base = match Base::of(schema) {
            Ok(base) => base,
            Err(reference) => {
                let full = reference.fullname(None);
                return self
                    .named
                    .get(&full)
                    .copied()
                    .ok_or_else(|| format!("the type `{full}` is used but never defined"));
            }
        };
        let leaf = match base {
            Base::Null => Node::Null,
            Base::Boolean => Node::Boolean,
            Base::Int => Node::Int,
            Base::Long => Node::Long,
            Base::Float => Node::Float,
            Base::Double => Node::Double,
            Base::Bytes => Node::Bytes,
            Base::String => Node::String,
            Base::Fixed(fixed) => {
                let node = Node::Fixed { size: fixed.size };
                return Ok(self.define(fixed.name.fullname(None), node)?.0);
            }
            Base::Enum(enum_schema) => {
                let node = Node::Enum {
                    symbols: enum_schema.symbols.len(),
                };
                return Ok(self.define(enum_schema.name.fullname(None), node)?.0);
            }
            Base::Array(items) => {
                // Push the parent before its children so children get higher ids (see
                // `fill_min_sizes`); the placeholder is overwritten below.
                let id = self.push(Node::Null)?;
                let items = self.nested(|c| c.node(items))?;
                self.nodes[id as usize] = Node::Array { items, item_min: 0 };
                return Ok(id);
            }
            Base::Map(values) => {
                let id = self.push(Node::Null)?;
                let values = self.nested(|c| c.node(values))?;
                self.nodes[id as usize] = Node::Map {
                    values,
                    entry_min: 1,
                };
                return Ok(id);
            }
            Base::Union(branches) => {
                let id = self.push(Node::Null)?;
                let mut ids = Vec::with_capacity(branches.len());
                for branch in branches {
                    ids.push(self.node(branch)?);
                }
                let (start, len) = Self::range(self.branches.len(), ids.len())?;
                self.branches.extend(ids);
                self.nodes[id as usize] = Node::Union { start, len };
                return Ok(id);
            }
            Base::Record(record) => {
                // Register the name before compiling fields: a recursive field refers to it.
                let (id, new) = self.define(record.name.fullname(None), Node::Null)?;
                if !new {
                    return Ok(id);
                }
                let defs = self.nested(|c| {
                    let mut defs = Vec::with_capacity(record.fields.len());
                    for field in &record.fields {
                        defs.push(FieldDef {
                            name: field.name.as_str().into(),
                            node: c.node(&field.schema)?,
                        });
                    }
                    Ok(defs)
                })?;
                let (start, len) = Self::range(self.fields.len(), defs.len())?;
                self.fields.extend(defs);
                // The walk list is filled once sizes are known (`fill_walk_lists`).
                self.nodes[id as usize] = Node::Record {
                    start,
                    len,
                    walk_start: 0,
                    walk_len: 0,
                };
                return Ok(id);
            }
        };
        self.push(leaf)
    }
}

/// One step of the path to a failing value, recorded while the error unwinds.
enum Segment<'a> {
    /// Index into `Program::fields`.
    Field(usize),
    /// Array item index, counted across blocks.
    Item(u64),
    /// Map key bytes (already checked to be UTF-8).
    Key(&'a [u8]),
}

/// An error on its way up; boxed so the walk's `Result` stays one pointer wide.
struct Failure<'a> {
    error: PayloadError,
    /// Innermost segment first.
    path: Vec<Segment<'a>>,
}

impl<'a> Failure<'a> {
    fn within(mut self: Box<Self>, segment: Segment<'a>) -> Box<Self> {
        self.path.push(segment);
        self
    }

    fn into_error(self, program: &Program) -> PayloadError {
        /// Long map keys are cut so a hostile key cannot make a megabyte error message.
        const MAX_KEY_CHARS: usize = 40;
        let Failure { mut error, path } = self;
        let mut text = String::new();
        for segment in path.iter().rev() {
            match segment {
                Segment::Field(i) => {
                    if !text.is_empty() {
                        text.push('.');
                    }
                    text.push_str(&program.fields[*i].name);
                }
                Segment::Item(i) => text.push_str(&format!("[{i}]")),
                Segment::Key(key) => {
                    let key = String::from_utf8_lossy(key);
                    text.push_str("[\"");
                    for c in key.chars().take(MAX_KEY_CHARS) {
                        text.extend(c.escape_debug());
                    }
                    if key.chars().nth(MAX_KEY_CHARS).is_some() {
                        text.push('…');
                    }
                    text.push_str("\"]");
                }
            }
        }
        if let Some(field) = error.field_slot_mut() {
            *field = text;
        }
        error
    }
}

type Step<'a, T = ()> = Result<T, Box<Failure<'a>>>;

/// Starts an error; the path is filled in as it unwinds. Cold: the success path is the
/// one that must be fast.
#[cold]
#[inline(never)]
fn fail<'a, T>(error: PayloadError) -> Step<'a, T> {
    Err(Box::new(Failure {
        error,
        path: Vec::new(),
    }))
}

/// Walks the payload, guided by a [`Program`].
struct Walker<'p, 'a> {
    program: &'p Program,
    /// The cursor over the bytes not yet consumed.
    reader: Reader<'a>,
    /// Zero-byte array items declared so far (see [`MAX_ZERO_WIDTH_ITEMS`]).
    zero_width_items: u64,
    /// Steps the walk may still take (see [`step_budget`]).
    steps_left: u64,
}

impl<'a> Walker<'_, 'a> {
    /// Checks one value of node `id`, consuming its bytes.
    fn value(&mut self, id: NodeId, depth: usize) -> Step<'a> {
        if self.steps_left == 0 {
            // The limit is filled in by `validate_counting`, which knows the budget.
            return fail(PayloadError::TooCostly { limit: 0 });
        }
        self.steps_left -= 1;
        match self.program.nodes[id as usize] {
            Node::Null => Ok(()),
            Node::Boolean => self.read(Reading::Boolean, Reader::boolean).map(drop),
            Node::Int => self.read(Reading::Varint, Reader::int).map(drop),
            Node::Long => self.read(Reading::Varint, Reader::long).map(drop),
            Node::Float => self.read(Reading::Float, Reader::float).map(drop),
            Node::Double => self.read(Reading::Double, Reader::double).map(drop),
            Node::Fixed { size } => self.read(Reading::Fixed, |r| r.fixed(size)).map(drop),
            Node::Bytes => self.read(Reading::Bytes, Reader::bytes).map(drop),
            Node::String => self.read(Reading::String, Reader::string).map(drop),
            Node::Enum { symbols } => {
                let index = i64::from(self.read(Reading::Varint, Reader::int)?);
                if usize::try_from(index).is_ok_and(|i| i < symbols) {
                    Ok(())
                } else {
                    fail(PayloadError::EnumIndexOutOfRange {
                        field: String::new(),
                        index,
                        symbols,
                    })
                }
            }
            Node::Union { start, len } => {
                let index = self.read(Reading::Varint, Reader::long)?;
                let branches = self.program.branches_of(start, len);
                match usize::try_from(index).ok().and_then(|i| branches.get(i)) {
                    // Unions do not add depth: Avro forbids a union directly inside a union,
                    // so every cycle passes through a record, which does.
                    Some(&branch) => self.value(branch, depth),
                    None => fail(PayloadError::UnionIndexOutOfRange {
                        field: String::new(),
                        index,
                        branches: branches.len(),
                    }),
                }
            }
            Node::Record {
                walk_start,
                walk_len,
                ..
            } => {
                let depth = enter(depth)?;
                let program = self.program;
                let walk = &program.walk[walk_start as usize..(walk_start + walk_len) as usize];
                for &i in walk {
                    self.value(program.fields[i as usize].node, depth)
                        .map_err(|e| e.within(Segment::Field(i as usize)))?;
                }
                Ok(())
            }
            Node::Array { items, item_min } => self.array(items, item_min, depth),
            Node::Map { values, entry_min } => self.map(values, entry_min, depth),
        }
    }

    fn array(&mut self, items: NodeId, item_min: usize, depth: usize) -> Step<'a> {
        let depth = enter(depth)?;
        let mut index: u64 = 0;
        while let Some(Block { count, byte_size }) = self.block_header("an array", item_min)? {
            if item_min == 0 {
                // A type with a zero-byte encoding (null, fixed(0), records of those) always
                // takes zero bytes and cannot be malformed, so there is nothing to walk; only
                // the count needs a cap.
                self.zero_width_items = self.zero_width_items.saturating_add(count);
                if self.zero_width_items > MAX_ZERO_WIDTH_ITEMS {
                    return fail(PayloadError::TooManyItems {
                        field: String::new(),
                        limit: MAX_ZERO_WIDTH_ITEMS,
                    });
                }
                index = index.saturating_add(count);
                self.check_block_size("an array", byte_size, 0)?;
                continue;
            }
            let before = self.reader.remaining();
            // `block_header` checked count × item_min ≤ bytes left, and each item
            // consumes at least item_min ≥ 1 bytes, so this loop is bounded by the payload.
            for _ in 0..count {
                self.value(items, depth)
                    .map_err(|e| e.within(Segment::Item(index)))?;
                index += 1;
            }
            self.check_block_size("an array", byte_size, before - self.reader.remaining())?;
        }
        Ok(())
    }

    fn map(&mut self, values: NodeId, entry_min: usize, depth: usize) -> Step<'a> {
        let depth = enter(depth)?;
        while let Some(Block { count, byte_size }) = self.block_header("a map", entry_min)? {
            let before = self.reader.remaining();
            // Bounded like arrays: every entry takes at least its key's length byte.
            for _ in 0..count {
                let key = self.read(Reading::MapKey, Reader::string)?;
                self.value(values, depth)
                    .map_err(|e| e.within(Segment::Key(key)))?;
            }
            self.check_block_size("a map", byte_size, before - self.reader.remaining())?;
        }
        Ok(())
    }

    /// Reads an array/map block header: `None` at the end marker (count 0); otherwise
    /// the block, once its item count is known to fit in the bytes left at `item_min`
    /// bytes an item.
    fn block_header(&mut self, what: &'static str, item_min: usize) -> Step<'a, Option<Block>> {
        let Some(block) = self.read(Reading::Block, Reader::block)? else {
            return Ok(None);
        };
        let remaining = self.reader.remaining();
        // count × item_min ≤ remaining, without overflow; item_min 0 is capped elsewhere.
        if let Some(fit) = remaining.checked_div(item_min)
            && block.count > fit as u64
        {
            return fail(PayloadError::BlockTooLarge {
                field: String::new(),
                what,
                count: block.count,
                remaining,
            });
        }
        Ok(Some(block))
    }

    fn check_block_size(
        &self,
        what: &'static str,
        declared: Option<u64>,
        actual: usize,
    ) -> Step<'a> {
        match declared {
            Some(declared) if declared != actual as u64 => fail(PayloadError::BlockSizeMismatch {
                field: String::new(),
                what,
                declared,
                actual,
            }),
            _ => Ok(()),
        }
    }

    /// Runs one read of the reader; its error becomes the [`PayloadError`] that names
    /// what the walk was `reading`. Only `#[inline]`, not `always`: unoptimised builds do
    /// not share stack slots between inlined copies, and ten copies in [`Walker::value`]
    /// tripled the frame the recursion stacks [`MAX_DEPTH`] times.
    #[inline]
    fn read<T>(
        &mut self,
        reading: Reading,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, ReadError>,
    ) -> Step<'a, T> {
        match read(&mut self.reader) {
            Ok(value) => Ok(value),
            Err(error) => unreadable(error, reading),
        }
    }
}

/// What the walk asks the reader for, to name it in a [`PayloadError`]. Varint errors
/// need no name: the reader says whether it was reading an `int` or a `long`.
#[derive(Clone, Copy)]
enum Reading {
    /// An int, long, enum index, union index or block count.
    Varint,
    Boolean,
    Float,
    Double,
    Fixed,
    Bytes,
    String,
    MapKey,
    /// An array or map block header.
    Block,
}

impl Reading {
    /// The value, for a value cut short or not UTF-8: `a double`, `string`.
    fn value(self) -> &'static str {
        match self {
            Reading::Boolean => "a boolean",
            Reading::Float => "a float",
            Reading::Double => "a double",
            Reading::Fixed => "a fixed value",
            Reading::String => "string",
            Reading::MapKey => "map key",
            // These reads fail neither way.
            Reading::Varint | Reading::Bytes | Reading::Block => "a value",
        }
    }

    /// Its length prefix, for a bad length or block byte size: `string length`.
    fn length(self) -> &'static str {
        match self {
            Reading::Bytes => "bytes length",
            Reading::String => "string length",
            Reading::MapKey => "map key length",
            Reading::Block => "block byte size",
            // These reads have no length.
            Reading::Varint
            | Reading::Boolean
            | Reading::Float
            | Reading::Double
            | Reading::Fixed => "length",
        }
    }
}

/// Starts the [`PayloadError`] for a failed read (see [`fail`]).
#[cold]
#[inline(never)]
fn unreadable<'a, T>(error: ReadError, reading: Reading) -> Step<'a, T> {
    let field = String::new();
    fail(match error {
        ReadError::TruncatedVarint => PayloadError::TruncatedVarint { field },
        ReadError::Truncated { needed, remaining } => PayloadError::Truncated {
            field,
            what: reading.value(),
            needed,
            remaining,
        },
        ReadError::VarintTooLong { what, max } => PayloadError::VarintTooLong { field, what, max },
        ReadError::LongOverflow => PayloadError::LongOverflow { field },
        ReadError::IntOutOfRange { value } => PayloadError::IntOutOfRange { field, value },
        ReadError::InvalidBoolean { byte } => PayloadError::InvalidBoolean { field, byte },
        ReadError::NegativeLength { length } => PayloadError::NegativeLength {
            field,
            what: reading.length(),
            length,
        },
        ReadError::LengthExceedsInput { length, remaining } => PayloadError::LengthExceedsPayload {
            field,
            what: reading.length(),
            length,
            remaining,
        },
        ReadError::InvalidUtf8 => PayloadError::InvalidUtf8 {
            field,
            what: reading.value(),
        },
    })
}

/// Enters one more level of record/array/map nesting.
fn enter<'a>(depth: usize) -> Step<'a, usize> {
    let depth = depth + 1;
    if depth > MAX_DEPTH {
        return fail(PayloadError::TooDeep {
            field: String::new(),
            limit: MAX_DEPTH,
        });
    }
    Ok(depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{LINKED_LIST, Rng, doubling, one_field, parsed};
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value;
    use apache_avro::writer::datum::GenericDatumWriter;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    /// A Salesforce-style platform event with every kind of Avro type.
    const ORDER_EVENT: &str = r#"{"type":"record","name":"Order_Event__e","namespace":"com.sforce.eventbus","fields":[
        {"name":"CreatedDate","type":"long","doc":"CreatedDate:DateTime"},
        {"name":"CreatedById","type":"string","doc":"CreatedBy:EntityId"},
        {"name":"Amount__c","type":["null","double"],"default":null},
        {"name":"Name__c","type":["null","string"],"default":null},
        {"name":"Shipped__c","type":["null","boolean"],"default":null},
        {"name":"Status__c","type":["null",{"type":"enum","name":"Status","symbols":["NEW","PAID","SHIPPED","CANCELLED"]}],"default":null},
        {"name":"Tags__c","type":{"type":"array","items":"string"}},
        {"name":"Attributes__c","type":{"type":"map","values":["null","long"]}},
        {"name":"Address__c","type":["null",{"type":"record","name":"Address","fields":[
            {"name":"Street","type":["null","string"],"default":null},
            {"name":"City","type":["null","string"],"default":null},
            {"name":"PostalCode","type":["null","string"],"default":null}]}],"default":null},
        {"name":"Checksum__c","type":{"type":"fixed","name":"Md5","size":16}},
        {"name":"Blob__c","type":["null","bytes"],"default":null},
        {"name":"Quantity__c","type":"int"},
        {"name":"Ratio__c","type":"float"},
        {"name":"ShipDate__c","type":["null",{"type":"int","logicalType":"date"}],"default":null},
        {"name":"BillingAddress__c","type":["null","Address"],"default":null},
        {"name":"Lines__c","type":{"type":"array","items":{"type":"record","name":"Line","fields":[
            {"name":"Sku","type":"string"},
            {"name":"Qty","type":"int"},
            {"name":"Price","type":["null","double"],"default":null}]}}}
    ]}"#;

    /// Mutual recursion through a union; `Y`'s smallest encoding (1 byte) is only found by
    /// a fixpoint, not by a single depth-first pass.
    const MUTUAL: &str = r#"{"type":"record","name":"Outer","fields":[
        {"name":"ys","type":{"type":"array","items":{"type":"record","name":"Y","fields":[
            {"name":"x","type":{"type":"record","name":"X","fields":[
                {"name":"u","type":["null","Y"]}]}}]}}}]}"#;

    fn avro(json: &str) -> Schema {
        Schema::parse_str(json).expect("test schema parses")
    }

    /// apache-avro's own encoder (what `to_avro_datum` wraps; that name is deprecated in 0.22).
    fn encode(schema: &Schema, value: Value) -> Vec<u8> {
        GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .expect("test value encodes")
    }

    /// apache-avro's own decoder, reading one datum from the front of `input`.
    fn decode(schema: &Schema, input: &mut &[u8]) -> apache_avro::AvroResult<Value> {
        GenericDatumReader::builder(schema)
            .build()?
            .read_value(input)
    }

    /// Encodes a long the way Avro does (zigzag varint).
    fn long(v: i64) -> Vec<u8> {
        let mut raw = ((v << 1) ^ (v >> 63)) as u64;
        let mut out = Vec::new();
        loop {
            if raw < 0x80 {
                out.push(raw as u8);
                return out;
            }
            out.push((raw as u8 & 0x7f) | 0x80);
            raw >>= 7;
        }
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn sample_order() -> Value {
        let address = |street: &str| {
            Value::Record(vec![
                (
                    "Street".into(),
                    Value::Union(1, Box::new(Value::String(street.into()))),
                ),
                ("City".into(), Value::Union(0, Box::new(Value::Null))),
                (
                    "PostalCode".into(),
                    Value::Union(1, Box::new(Value::String("94105".into()))),
                ),
            ])
        };
        Value::Record(vec![
            ("CreatedDate".into(), Value::Long(1_718_000_000_000)),
            (
                "CreatedById".into(),
                Value::String("005xx000001X8Uz".into()),
            ),
            (
                "Amount__c".into(),
                Value::Union(1, Box::new(Value::Double(12.5))),
            ),
            (
                "Name__c".into(),
                Value::Union(1, Box::new(Value::String("Ünïcödé order ✓".into()))),
            ),
            (
                "Shipped__c".into(),
                Value::Union(1, Box::new(Value::Boolean(true))),
            ),
            (
                "Status__c".into(),
                Value::Union(1, Box::new(Value::Enum(2, "SHIPPED".into()))),
            ),
            (
                "Tags__c".into(),
                Value::Array(vec![Value::String("rush".into()), Value::String("".into())]),
            ),
            (
                "Attributes__c".into(),
                Value::Map(
                    [
                        (
                            "weight".to_owned(),
                            Value::Union(1, Box::new(Value::Long(-3))),
                        ),
                        ("unset".to_owned(), Value::Union(0, Box::new(Value::Null))),
                    ]
                    .into_iter()
                    .collect(),
                ),
            ),
            (
                "Address__c".into(),
                Value::Union(1, Box::new(address("1 Market St"))),
            ),
            ("Checksum__c".into(), Value::Fixed(16, vec![0xab; 16])),
            (
                "Blob__c".into(),
                Value::Union(1, Box::new(Value::Bytes(vec![0, 1, 2, 255]))),
            ),
            ("Quantity__c".into(), Value::Int(i32::MIN)),
            ("Ratio__c".into(), Value::Float(0.25)),
            (
                "ShipDate__c".into(),
                Value::Union(1, Box::new(Value::Date(19_900))),
            ),
            (
                "BillingAddress__c".into(),
                Value::Union(0, Box::new(Value::Null)),
            ),
            (
                "Lines__c".into(),
                Value::Array(vec![Value::Record(vec![
                    ("Sku".into(), Value::String("SKU-1".into())),
                    ("Qty".into(), Value::Int(3)),
                    (
                        "Price".into(),
                        Value::Union(1, Box::new(Value::Double(4.0))),
                    ),
                ])]),
            ),
        ])
    }

    fn sample_order_bytes() -> Vec<u8> {
        encode(&avro(ORDER_EVENT), sample_order())
    }

    // ---- valid payloads ----

    #[test]
    fn payloads_encoded_by_apache_avro_validate() {
        let schema = parsed(ORDER_EVENT);
        let bytes = sample_order_bytes();
        assert_eq!(schema.validate(&bytes), Ok(()));
    }

    #[test]
    fn empty_record_accepts_only_the_empty_payload() {
        let schema = parsed(r#"{"type":"record","name":"Empty","fields":[]}"#);
        assert_eq!(schema.validate(&[]), Ok(()));
        assert_eq!(
            schema.validate(&[0]),
            Err(PayloadError::TrailingBytes { count: 1 })
        );
    }

    #[test]
    fn logical_types_validate_as_their_base_types() {
        let json = r#"{"type":"record","name":"L","fields":[
            {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"d","type":{"type":"int","logicalType":"date"}},
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
            {"name":"money","type":{"type":"fixed","name":"Money","size":4,"logicalType":"decimal","precision":9,"scale":2}},
            {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
            {"name":"again","type":"Money"}]}"#;
        let schema = parsed(json);
        let payload = cat(&[
            &long(1_718_000_000_000),
            &long(19_900),
            &long(3),
            b"abc",
            &long(2),
            &[0x01, 0x00],
            &[0; 4],
            &[0; 12],
            &[9; 4],
        ]);
        assert_eq!(schema.validate(&payload), Ok(()));
        assert!(schema.validate(&payload[..payload.len() - 1]).is_err());
    }

    #[test]
    fn negative_block_counts_with_byte_sizes_are_accepted() {
        let schema = one_field("xs", r#"{"type":"array","items":"long"}"#);
        // Block of 2 items written as count -2 and a byte size of 2, then the end marker.
        let payload = cat(&[&long(-2), &long(2), &long(1), &long(-1), &long(0)]);
        assert_eq!(schema.validate(&payload), Ok(()));
        // apache-avro's decoder reads the same bytes as [1, -1].
        let decoded = decode(
            &avro(r#"{"type":"record","name":"R","fields":[{"name":"xs","type":{"type":"array","items":"long"}}]}"#),
            &mut &payload[..],
        )
        .expect("apache-avro decodes negative block counts");
        assert_eq!(
            decoded,
            Value::Record(vec![(
                "xs".into(),
                Value::Array(vec![Value::Long(1), Value::Long(-1)])
            )])
        );
    }

    /// A linked list of `nodes` records, hand-encoded: apache-avro's own encoder runs out
    /// of a test thread's stack near 64 levels in debug builds, so it only checks short lists.
    fn linked_list_payload(nodes: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for i in 0..nodes {
            out.extend(long(i as i64));
            // Union branch 1 (another node), or 0 (null) after the last one.
            out.extend(long(i64::from(i + 1 < nodes)));
        }
        out
    }

    #[test]
    fn linked_list_encoding_matches_apache_avro() {
        let mut value = Value::Union(0, Box::new(Value::Null));
        for i in (1..10).rev() {
            value = Value::Union(
                1,
                Box::new(Value::Record(vec![
                    ("value".into(), Value::Long(i)),
                    ("next".into(), value),
                ])),
            );
        }
        let head = Value::Record(vec![
            ("value".into(), Value::Long(0)),
            ("next".into(), value),
        ]);
        let bytes = encode(&avro(LINKED_LIST), head);
        assert_eq!(bytes, linked_list_payload(10));
        assert_eq!(parsed(LINKED_LIST).validate(&bytes), Ok(()));
    }

    #[test]
    fn linked_list_validates_up_to_the_depth_cap_on_a_small_stack() {
        let schema = parsed(LINKED_LIST);
        // Run on a 256 KiB stack, an eighth of a tokio worker's: at the cap the walk needs
        // under 128 KiB unoptimised and under 32 KiB in release builds (measured).
        let outcome = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                (
                    schema.validate(&linked_list_payload(MAX_DEPTH)),
                    schema.validate(&linked_list_payload(MAX_DEPTH + 1)),
                )
            })
            .expect("thread starts")
            .join()
            .expect("validation does not overflow the stack");
        assert_eq!(outcome.0, Ok(()));
        assert!(matches!(outcome.1, Err(PayloadError::TooDeep { .. })));
    }

    #[test]
    fn mutual_recursion_finds_the_smallest_item_size() {
        let schema = parsed(MUTUAL);
        // Three Ys, each `x.u = null`: one byte per item.
        let payload = cat(&[&long(3), &[0, 0, 0], &long(0)]);
        assert_eq!(schema.validate(&payload), Ok(()));
        // Four items cannot fit in three bytes, and that is known before the loop.
        let payload = cat(&[&long(4), &[0, 0, 0]]);
        assert!(matches!(
            schema.validate(&payload),
            Err(PayloadError::BlockTooLarge {
                count: 4,
                remaining: 3,
                ..
            })
        ));
    }

    // ---- the error messages a person reads ----

    #[test]
    fn union_index_out_of_range_names_the_field() {
        let schema = one_field("Amount__c", r#"["null","double"]"#);
        let err = schema
            .validate(&long(7))
            .expect_err("branch 7 does not exist");
        assert_eq!(
            err.to_string(),
            "field `Amount__c`: union branch index 7 is out of range (the union has 2 branches)"
        );
        assert_eq!(err.field(), Some("Amount__c"));
        assert!(schema.validate(&long(-1)).is_err());
    }

    #[test]
    fn trailing_bytes_are_counted() {
        let schema = parsed(ORDER_EVENT);
        let mut bytes = sample_order_bytes();
        bytes.extend_from_slice(&[1, 2, 3]);
        let err = schema.validate(&bytes).expect_err("trailing bytes");
        assert_eq!(
            err.to_string(),
            "the payload has 3 bytes left over after the record ended"
        );
        assert_eq!(err.field(), None);
    }

    #[test]
    fn huge_string_length_fails_without_reading() {
        let schema = one_field("Name__c", r#""string""#);
        let payload = cat(&[&long(i64::MAX), &[b'x'; 12]]);
        let err = schema
            .validate(&payload)
            .expect_err("length beyond payload");
        assert_eq!(
            err.to_string(),
            "field `Name__c`: string length 9223372036854775807 exceeds the 12 bytes left in the payload"
        );
        let err = schema.validate(&long(-5)).expect_err("negative length");
        assert_eq!(
            err.to_string(),
            "field `Name__c`: string length -5 is negative"
        );
    }

    #[test]
    fn invalid_utf8_in_strings_and_map_keys_is_rejected() {
        let schema = one_field("x", r#""string""#);
        let err = schema
            .validate(&cat(&[&long(2), &[0xc3, 0x28]]))
            .expect_err("bad UTF-8");
        assert_eq!(err.to_string(), "field `x`: invalid UTF-8 in string");

        let schema = one_field("m", r#"{"type":"map","values":"int"}"#);
        let err = schema
            .validate(&cat(&[&long(1), &long(1), &[0xff], &long(0), &long(0)]))
            .expect_err("bad key");
        assert_eq!(err.to_string(), "field `m`: invalid UTF-8 in map key");
        // Bytes fields may hold anything.
        let schema = one_field("b", r#""bytes""#);
        assert_eq!(schema.validate(&cat(&[&long(2), &[0xc3, 0x28]])), Ok(()));
    }

    #[test]
    fn nested_paths_name_records_items_and_keys() {
        let schema = parsed(ORDER_EVENT);
        let avro_schema = avro(ORDER_EVENT);
        let Value::Record(mut fields) = sample_order() else {
            unreachable!("sample is a record")
        };
        // A string in Lines__c[0].Sku with a bad byte: encode "SKU-1" then corrupt it.
        let good = encode(&avro_schema, Value::Record(fields.clone()));
        let at = good
            .windows(5)
            .position(|w| w == b"SKU-1")
            .expect("sku is in the payload");
        let mut bad = good;
        bad[at] = 0xff;
        assert_eq!(
            schema.validate(&bad).map_err(|e| e.to_string()),
            Err("field `Lines__c[0].Sku`: invalid UTF-8 in string".to_owned())
        );
        // Address__c.Street: make the nested union index invalid.
        fields[6].1 = Value::Array(vec![]);
        let good = encode(&avro_schema, Value::Record(fields.clone()));
        let at = good
            .windows(11)
            .position(|w| w == b"1 Market St")
            .expect("street is in the payload");
        let mut bad = good;
        bad[at - 2] = 0x08; // the Street union index, just before the length byte
        assert_eq!(
            schema.validate(&bad).map_err(|e| e.to_string()),
            Err(
                "field `Address__c.Street`: union branch index 4 is out of range (the union has 2 branches)"
                    .to_owned()
            )
        );
        // Map value: Attributes__c["weight"] union index.
        let schema = one_field(
            "Attributes__c",
            r#"{"type":"map","values":["null","long"]}"#,
        );
        let payload = cat(&[&long(1), &long(6), b"weight", &long(5)]);
        assert_eq!(
            schema.validate(&payload).map_err(|e| e.to_string()),
            Err(
                "field `Attributes__c[\"weight\"]`: union branch index 5 is out of range (the union has 2 branches)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn enum_index_fixed_size_boolean_and_int_range_are_checked() {
        let schema = one_field("s", r#"{"type":"enum","name":"S","symbols":["A","B","C"]}"#);
        assert_eq!(schema.validate(&long(2)), Ok(()));
        assert_eq!(
            schema.validate(&long(3)).map_err(|e| e.to_string()),
            Err("field `s`: enum symbol index 3 is out of range (the enum has 3 symbols)".into())
        );
        assert!(schema.validate(&long(-1)).is_err());

        let schema = one_field("f", r#"{"type":"fixed","name":"F","size":16}"#);
        assert_eq!(schema.validate(&[7; 16]), Ok(()));
        assert_eq!(
            schema.validate(&[7; 15]).map_err(|e| e.to_string()),
            Err("field `f`: a fixed value needs 16 bytes but only 15 are left".into())
        );

        let schema = one_field("b", r#""boolean""#);
        assert_eq!(schema.validate(&[1]), Ok(()));
        assert_eq!(
            schema.validate(&[2]).map_err(|e| e.to_string()),
            Err("field `b`: boolean byte 0x02 is neither 0 nor 1".into())
        );

        let schema = one_field("i", r#""int""#);
        assert_eq!(schema.validate(&long(i64::from(i32::MIN))), Ok(()));
        assert_eq!(schema.validate(&long(i64::from(i32::MAX))), Ok(()));
        assert_eq!(
            schema
                .validate(&long(i64::from(i32::MAX) + 1))
                .map_err(|e| e.to_string()),
            Err("field `i`: value 2147483648 does not fit in an Avro int (32 bits)".into())
        );

        let schema = one_field("d", r#""double""#);
        assert_eq!(
            schema.validate(&[0; 3]).map_err(|e| e.to_string()),
            Err("field `d`: a double needs 8 bytes but only 3 are left".into())
        );
    }

    #[test]
    fn varints_longer_than_their_type_allows_are_rejected() {
        let schema = one_field("n", r#""long""#);
        // Ten bytes is the longest long; padding with continuation bytes is legal.
        let mut ten = vec![0x80; 9];
        ten.push(0x01);
        assert_eq!(schema.validate(&ten), Ok(()));
        let mut eleven = vec![0x80; 9];
        eleven.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(
            schema.validate(&eleven).map_err(|e| e.to_string()),
            Err("field `n`: a variable-length long is longer than 10 bytes".into())
        );
        let mut overflow = vec![0xff; 9];
        overflow.push(0x02);
        assert!(matches!(
            schema.validate(&overflow),
            Err(PayloadError::LongOverflow { .. })
        ));
        assert!(matches!(
            schema.validate(&[0x80, 0x80]),
            Err(PayloadError::TruncatedVarint { .. })
        ));

        let schema = one_field("i", r#""int""#);
        assert!(matches!(
            schema.validate(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err(PayloadError::VarintTooLong { max: 5, .. })
        ));
    }

    #[test]
    fn every_strict_prefix_of_a_valid_payload_fails() {
        // Avro's binary encoding is self-delimiting, so no prefix is a complete datum.
        let schema = parsed(ORDER_EVENT);
        let bytes = sample_order_bytes();
        for end in 0..bytes.len() {
            assert!(
                schema.validate(&bytes[..end]).is_err(),
                "prefix of {end} bytes was accepted"
            );
        }
    }

    // ---- hostile payloads ----

    /// Runs `f` and checks it took less than a second even unoptimised: hostile counts
    /// must be rejected before any loop, not after billions of iterations.
    fn fast<T>(f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "took {:?}",
            start.elapsed()
        );
        out
    }

    #[test]
    fn huge_block_counts_fail_fast() {
        let schema = one_field("xs", r#"{"type":"array","items":"long"}"#);
        let payload = cat(&[&long(1 << 40), &[0; 20]]);
        let err = fast(|| schema.validate(&payload)).expect_err("count too large");
        assert_eq!(
            err.to_string(),
            "field `xs`: an array block of 1099511627776 items cannot fit in the 20 bytes left in the payload"
        );
        // Doubles take 8 bytes each: 3 of them cannot fit in 20 bytes.
        let schema = one_field("xs", r#"{"type":"array","items":"double"}"#);
        assert!(matches!(
            schema.validate(&cat(&[&long(3), &[0; 20]])),
            Err(PayloadError::BlockTooLarge { count: 3, .. })
        ));
        let schema = one_field("m", r#"{"type":"map","values":"null"}"#);
        assert!(matches!(
            fast(|| schema.validate(&cat(&[&long(i64::MAX), &[0; 8]]))),
            Err(PayloadError::BlockTooLarge { .. })
        ));
        // i64::MIN as a count: the negative form with the largest magnitude.
        let schema = one_field("xs", r#"{"type":"array","items":"long"}"#);
        assert!(matches!(
            fast(|| schema.validate(&cat(&[&long(i64::MIN), &long(1), &[0]]))),
            Err(PayloadError::BlockTooLarge { .. })
        ));
    }

    #[test]
    fn zero_byte_items_are_capped_per_payload() {
        for items in [r#""null""#, r#"{"type":"record","name":"E","fields":[]}"#] {
            let schema = one_field("xs", &format!(r#"{{"type":"array","items":{items}}}"#));
            let limit = MAX_ZERO_WIDTH_ITEMS as i64;
            assert_eq!(schema.validate(&cat(&[&long(limit), &long(0)])), Ok(()));
            let err = fast(|| schema.validate(&cat(&[&long(1 << 62), &long(0)])))
                .expect_err("2^62 nulls");
            assert_eq!(
                err.to_string(),
                "field `xs`: more than 65536 zero-byte array items in one payload"
            );
            // The cap is per payload, not per block.
            let two_blocks = cat(&[&long(limit), &long(1), &long(0)]);
            assert!(matches!(
                schema.validate(&two_blocks),
                Err(PayloadError::TooManyItems { .. })
            ));
        }
    }

    #[test]
    fn block_byte_sizes_are_checked() {
        let schema = one_field("xs", r#"{"type":"array","items":"long"}"#);
        let err = schema
            .validate(&cat(&[
                &long(-2),
                &long(3),
                &long(1),
                &long(1),
                &[0],
                &long(0),
            ]))
            .expect_err("size says 3, items took 2");
        assert_eq!(
            err.to_string(),
            "field `xs`: an array block declared 3 bytes but its items took 2"
        );
        assert!(matches!(
            schema.validate(&cat(&[&long(-1), &long(-4), &long(1), &long(0)])),
            Err(PayloadError::NegativeLength { .. })
        ));
        assert!(matches!(
            schema.validate(&cat(&[&long(-1), &long(1 << 50), &long(1), &long(0)])),
            Err(PayloadError::LengthExceedsPayload { .. })
        ));
    }

    #[test]
    fn recursive_payloads_stop_at_the_depth_cap() {
        let schema = parsed(LINKED_LIST);
        // value = 1, next = branch 1 (another node), forever: far deeper than the cap.
        let payload = [0x02, 0x02].repeat(100_000);
        let err = fast(|| schema.validate(&payload)).expect_err("too deep");
        assert!(
            matches!(
                err,
                PayloadError::TooDeep {
                    limit: MAX_DEPTH,
                    ..
                }
            ),
            "{err:?}"
        );
        let path = err.field().expect("has a path");
        assert_eq!(path.matches("next").count(), MAX_DEPTH);
        assert!(
            err.to_string()
                .ends_with(": values nest more than 64 records, arrays and maps deep")
        );
    }

    #[test]
    fn a_record_that_contains_itself_has_no_valid_payload() {
        let json = r#"{"type":"record","name":"Loop","fields":[{"name":"me","type":"Loop"}]}"#;
        let schema = parsed(json);
        assert!(matches!(
            fast(|| schema.validate(&[])),
            Err(PayloadError::TooDeep { .. })
        ));
        let json = r#"{"type":"record","name":"R","fields":[{"name":"xs","type":{"type":"array","items":
            {"type":"record","name":"Loop","fields":[{"name":"me","type":"Loop"}]}}}]}"#;
        let schema = parsed(json);
        assert_eq!(schema.validate(&long(0)), Ok(()));
        assert!(matches!(
            fast(|| schema.validate(&cat(&[&long(1), &[0; 100]]))),
            Err(PayloadError::BlockTooLarge { .. })
        ));
    }

    #[test]
    fn long_map_keys_are_cut_in_messages() {
        let schema = one_field("m", r#"{"type":"map","values":"boolean"}"#);
        let key = "k".repeat(1000);
        let payload = cat(&[&long(1), &long(1000), key.as_bytes(), &[7]]);
        let err = schema.validate(&payload).expect_err("bad boolean");
        let text = err.to_string();
        assert!(text.len() < 200, "{text}");
        assert!(text.contains("…\"]"), "{text}");
    }

    // ---- property tests ----

    fn named_types(schema: &Schema, out: &mut HashMap<String, Schema>) {
        match schema {
            Schema::Record(r) => {
                out.insert(r.name.fullname(None), schema.clone());
                for f in &r.fields {
                    named_types(&f.schema, out);
                }
            }
            Schema::Enum(e) => {
                out.insert(e.name.fullname(None), schema.clone());
            }
            Schema::Fixed(f) => {
                out.insert(f.name.fullname(None), schema.clone());
            }
            Schema::Array(a) => named_types(&a.items, out),
            Schema::Map(m) => named_types(&m.types, out),
            Schema::Union(u) => u.variants().iter().for_each(|v| named_types(v, out)),
            _ => {}
        }
    }

    fn random_value(
        schema: &Schema,
        names: &HashMap<String, Schema>,
        rng: &mut Rng,
        depth: usize,
    ) -> Value {
        // Past a few levels, containers are empty and unions take their first branch
        // (null in our recursive schemas) so recursive values stay finite.
        let deep = depth > 5;
        match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => Value::Boolean(rng.next() & 1 == 1),
            Schema::Int => Value::Int(rng.long() as i32),
            Schema::Long => Value::Long(rng.long()),
            Schema::Float => Value::Float(f32::from_bits(rng.next() as u32)),
            Schema::Double => Value::Double(f64::from_bits(rng.next())),
            Schema::Bytes => {
                let n = rng.below(20);
                Value::Bytes(rng.bytes(n))
            }
            Schema::String => Value::String(rng.string()),
            Schema::Date => Value::Date(rng.long() as i32),
            Schema::Fixed(f) => Value::Fixed(f.size, rng.bytes(f.size)),
            Schema::Enum(e) => {
                let i = rng.below(e.symbols.len());
                Value::Enum(i as u32, e.symbols[i].clone())
            }
            Schema::Array(a) => {
                let n = if deep { 0 } else { rng.below(6) };
                Value::Array(
                    (0..n)
                        .map(|_| random_value(&a.items, names, rng, depth + 1))
                        .collect(),
                )
            }
            Schema::Map(m) => {
                let n = if deep { 0 } else { rng.below(6) };
                Value::Map(
                    (0..n)
                        .map(|_| (rng.string(), random_value(&m.types, names, rng, depth + 1)))
                        .collect(),
                )
            }
            Schema::Union(u) => {
                let i = if deep {
                    0
                } else {
                    rng.below(u.variants().len())
                };
                Value::Union(
                    i as u32,
                    Box::new(random_value(&u.variants()[i], names, rng, depth + 1)),
                )
            }
            Schema::Record(r) => Value::Record(
                r.fields
                    .iter()
                    .map(|f| {
                        (
                            f.name.clone(),
                            random_value(&f.schema, names, rng, depth + 1),
                        )
                    })
                    .collect(),
            ),
            Schema::Ref { name } => {
                let target = names.get(&name.fullname(None)).expect("refs resolve");
                random_value(target, names, rng, depth)
            }
            other => unimplemented!("the test generator does not cover {other:?}"),
        }
    }

    fn random_payload(json: &str, seed: u64) -> Vec<u8> {
        let schema = avro(json);
        let mut names = HashMap::new();
        named_types(&schema, &mut names);
        let value = random_value(&schema, &names, &mut Rng(seed), 0);
        encode(&schema, value)
    }

    const ALL_SCHEMAS: [&str; 3] = [ORDER_EVENT, LINKED_LIST, MUTUAL];

    /// Rejections where we are deliberately stricter than apache-avro's decoder (see the
    /// module docs): it reads a union at end of input as its null branch, drops bits past
    /// the 64th of a 10-byte varint, and ignores a block's declared byte size.
    fn stricter_than_apache_avro(err: &PayloadError) -> bool {
        matches!(
            err,
            PayloadError::TruncatedVarint { .. }
                | PayloadError::LongOverflow { .. }
                | PayloadError::BlockSizeMismatch { .. }
                | PayloadError::NegativeLength {
                    what: "block byte size",
                    ..
                }
                | PayloadError::LengthExceedsPayload {
                    what: "block byte size",
                    ..
                }
        )
    }

    #[test]
    fn the_doubling_null_bomb_validates_in_a_few_steps() {
        // 44 levels: 2^44 nulls in a naive walk of the empty payload.
        let bomb = parsed(&doubling(44, r#""null""#));
        let (verdict, steps) = bomb.validate_counting(&[]);
        assert_eq!(verdict, Ok(()));
        assert!(steps <= 1, "took {steps} steps");
        assert!(
            bomb.validate(&[0]).is_err(),
            "a zero-byte record has no bytes"
        );
    }

    #[test]
    fn a_doubling_schema_with_byte_leaves_costs_steps_per_byte() {
        // Leaves that take a byte: the payload itself is 2^levels bytes, and the walk
        // stays within its budget of that.
        let schema = parsed(&doubling(12, r#"["null","int"]"#));
        // Every d_i holds 2^i leaves; all null (branch 0, one byte each).
        let payload = vec![0u8; (0..=12).map(|i| 1usize << i).sum()];
        let (verdict, steps) = schema.validate_counting(&payload);
        assert_eq!(verdict, Ok(()));
        assert!(
            steps < step_budget(payload.len()),
            "{steps} steps for {} bytes",
            payload.len()
        );
        // Per one-byte leaf: R_0, the union, its null branch, and about one record above.
        assert!(
            steps <= 4 * payload.len() as u64,
            "{steps} steps for {} bytes",
            payload.len()
        );
    }

    #[test]
    fn a_long_chain_of_named_records_parses_and_compiles() {
        // 32,000 records, each referring to the one before it (the probe's 3.1 MB
        // schema): parsing and compiling it must not be quadratic.
        let n = 32_000;
        let mut fields = vec![
            r#"{"name":"c0","type":{"type":"record","name":"C0","fields":[{"name":"v","type":"long"}]}}"#
                .to_owned(),
        ];
        for i in 1..n {
            fields.push(format!(
                r#"{{"name":"c{i}","type":{{"type":"record","name":"C{i}","fields":[{{"name":"p","type":["null","C{}"]}}]}}}}"#,
                i - 1
            ));
        }
        let json = format!(
            r#"{{"type":"record","name":"Chain","fields":[{}]}}"#,
            fields.join(",")
        );
        let started = Instant::now();
        let schema = parsed(&json);
        eprintln!(
            "{} bytes, {n} chained records: parsed and compiled in {:?}",
            json.len(),
            started.elapsed()
        );
        // The smallest event: c0's long and a null branch for every other field.
        assert!(schema.validate(&vec![0u8; n - 1]).is_err());
        assert_eq!(schema.validate(&vec![0u8; n]), Ok(()));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            for json in ALL_SCHEMAS {
                let _ = parsed(json).validate(&bytes);
            }
            let _ = one_field("xs", r#"{"type":"array","items":"null"}"#).validate(&bytes);
            let _ = one_field("m", r#"{"type":"map","values":["null","string"]}"#).validate(&bytes);
        }

        /// The walk never reaches its step budget, whatever the bytes: the budget is a
        /// bound, not a guess.
        #[test]
        fn arbitrary_bytes_stay_within_the_step_budget(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let bombs = [doubling(30, r#""null""#), doubling(8, r#"["null","int"]"#)];
            let schemas = ALL_SCHEMAS.iter().copied().chain(bombs.iter().map(String::as_str));
            for json in schemas {
                let (verdict, steps) = parsed(json).validate_counting(&bytes);
                prop_assert!(steps < step_budget(bytes.len()), "{steps} steps, {verdict:?}");
            }
        }

        #[test]
        fn apache_avro_encoded_random_values_validate(seed in any::<u64>()) {
            for json in ALL_SCHEMAS {
                let bytes = random_payload(json, seed);
                prop_assert_eq!(parsed(json).validate(&bytes), Ok(()));
            }
        }

        /// Corrupt a valid payload: we must never panic, whenever we accept apache-avro's own
        /// decoder must read the bytes as one whole datum too (we are never laxer), and
        /// whenever it does we accept too, bar the documented strictness.
        #[test]
        fn corrupted_payloads_never_fool_the_validator(
            seed in any::<u64>(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            for json in ALL_SCHEMAS {
                let mut bytes = random_payload(json, seed);
                if bytes.is_empty() {
                    continue;
                }
                for &(at, byte) in &edits {
                    let i = at % bytes.len();
                    bytes[i] = byte;
                }
                if cut % 4 == 0 {
                    bytes.truncate(cut % (bytes.len() + 1));
                }
                let ours = parsed(json).validate(&bytes);
                let mut rest = &bytes[..];
                let theirs = decode(&avro(json), &mut rest);
                let theirs_whole = theirs.is_ok() && rest.is_empty();
                match &ours {
                    Ok(()) => prop_assert!(
                        theirs_whole,
                        "we accepted; apache-avro said {:?} with {} bytes left",
                        theirs.err(),
                        rest.len()
                    ),
                    Err(err) => prop_assert!(
                        !theirs_whole || stricter_than_apache_avro(err),
                        "apache-avro accepted; we said {err}"
                    ),
                }
            }
        }
    }
}
