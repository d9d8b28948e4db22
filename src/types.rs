//! Shared newtypes for ids that cross module boundaries.
//!
//! Owns: the id types and their byte/string encodings.
//! Must not: depend on any other module of the crate.

use std::fmt;

/// A topic name as clients send it, for example `/event/Order_Event__e`.
///
/// Names are case-sensitive and must start with `/`; the checks live in
/// [`TopicName::parse`] so every layer sees only well-formed names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

/// Longest topic name we accept, in bytes. Salesforce names are far shorter;
/// the cap keeps keys and log lines bounded.
pub const MAX_TOPIC_NAME_BYTES: usize = 255;

impl TopicName {
    /// Checks and wraps a topic name.
    ///
    /// # Errors
    /// Returns a human-readable reason when the name is blank, too long, does
    /// not start with `/`, or contains whitespace or control characters.
    pub fn parse(name: &str) -> Result<Self, String> {
        if name.trim().is_empty() {
            return Err("the topic name is blank".to_owned());
        }
        if name.len() > MAX_TOPIC_NAME_BYTES {
            return Err(format!(
                "the topic name is {} bytes long; at most {MAX_TOPIC_NAME_BYTES} are allowed",
                name.len()
            ));
        }
        if !name.starts_with('/') {
            return Err(format!(
                "the topic name `{name}` must start with `/`, as in `/event/Order_Event__e`"
            ));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "the topic name `{}` contains whitespace or control characters",
                name.escape_debug()
            ));
        }
        if name.split('/').skip(1).any(str::is_empty) {
            return Err(format!("the topic name `{name}` has an empty path segment"));
        }
        // `.` and `..` read as paths everywhere else (the topics folder maps
        // names to files); no Salesforce topic has them.
        if name.split('/').skip(1).any(|seg| seg == "." || seg == "..") {
            return Err(format!(
                "the topic name `{name}` has a `.` or `..` path segment"
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The interned numeric id of a topic inside one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicId(pub u32);

/// A position in one topic's log. Offsets start at 1; `Offset(0)` means
/// "before the first event" and is a valid CUSTOM start point.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset right after this one.
    pub fn next(self) -> Self {
        Offset(self.0 + 1)
    }
}

/// Length of every replay id we issue, in bytes.
pub const REPLAY_ID_LEN: usize = 8;

/// The wire form of an [`Offset`]: 8 bytes, big-endian, so clients that treat
/// replay ids as a long (Java, Node) read the same number we store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayId([u8; REPLAY_ID_LEN]);

impl ReplayId {
    /// Decodes a replay id sent by a client.
    ///
    /// # Errors
    /// Returns a reason when the id is not exactly 8 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let arr: [u8; REPLAY_ID_LEN] = bytes.try_into().map_err(|_| {
            format!(
                "a replay id is {REPLAY_ID_LEN} bytes long, this one has {}",
                bytes.len()
            )
        })?;
        Ok(Self(arr))
    }

    /// The id's bytes as they go on the wire.
    pub fn to_bytes(self) -> [u8; REPLAY_ID_LEN] {
        self.0
    }

    /// The log offset this id names.
    pub fn offset(self) -> Offset {
        Offset(u64::from_be_bytes(self.0))
    }
}

impl From<Offset> for ReplayId {
    fn from(o: Offset) -> Self {
        Self(o.0.to_be_bytes())
    }
}

impl fmt::Display for ReplayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// An Avro schema id: MD5 of the schema's Parsing Canonical Form, base64url
/// without padding (22 characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaId(String);

impl SchemaId {
    /// Wraps a schema id string without checking it; unknown ids simply
    /// fail to resolve.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest event id a client may send, in characters (spec §7).
pub const MAX_EVENT_ID_CHARS: usize = 36;

/// An event id: the client's own (at most 36 characters) or a generated UUID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct EventId(String);

impl EventId {
    /// Wraps an event id; callers check the length rule first.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// A fresh random UUID, for events sent without an id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of one RPC, reported in responses, trailers and error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RpcId(uuid::Uuid);

impl RpcId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for RpcId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topic_names_follow_the_salesforce_shapes() {
        assert!(TopicName::parse("/event/Order_Event__e").is_ok());
        assert!(TopicName::parse("/data/AccountChangeEvent").is_ok());
        assert!(TopicName::parse("").is_err());
        assert!(TopicName::parse("   ").is_err());
        assert!(TopicName::parse("event/X").is_err());
        assert!(TopicName::parse("/event/a b").is_err());
        assert!(TopicName::parse("/event//x").is_err());
        assert!(TopicName::parse(&format!("/{}", "x".repeat(300))).is_err());
        assert!(TopicName::parse("/../up").is_err());
        assert!(TopicName::parse("/event/./x").is_err());
        assert!(TopicName::parse("/event/x..y").is_ok());
    }

    #[test]
    fn replay_ids_must_be_eight_bytes() {
        assert!(ReplayId::decode(b"25243248").is_ok()); // 8 ASCII bytes decode; the log rejects the value
        assert!(ReplayId::decode(b"123").is_err());
        assert!(ReplayId::decode(&[0; 10]).is_err());
        assert!(ReplayId::decode(&[]).is_err());
    }

    proptest! {
        #[test]
        fn replay_id_round_trips_and_keeps_order(a: u64, b: u64) {
            let ra = ReplayId::from(Offset(a));
            let rb = ReplayId::from(Offset(b));
            prop_assert_eq!(ReplayId::decode(&ra.to_bytes()).map(ReplayId::offset), Ok(Offset(a)));
            prop_assert_eq!(a.cmp(&b), ra.to_bytes().cmp(&rb.to_bytes()));
        }
    }
}
