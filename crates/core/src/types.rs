//! Shared newtypes for ids that cross module boundaries.
//!
//! Owns: the id types and their byte/string encodings, and how a value a
//! client sent is quoted back to it ([`Echo`], [`clip_message`]).
//! Must not: depend on any other module of the crate.

use std::borrow::Cow;
use std::fmt;

/// The tenant of the topics folder and of every caller in auth mode `none`:
/// an 18-character id in the shape of a Salesforce org id. Here, in the
/// shared types, because auth (who the caller is) and the engine (whose
/// topic it is) both name it and neither may depend on the other.
pub const DEFAULT_TENANT_GUID: &str = "00D000000000000EAA";

/// A topic name as clients send it, for example `/event/Order_Event__e`.
///
/// Names are case-sensitive and must start with `/`; the checks live in
/// [`TopicName::parse`] so every layer sees only well-formed names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

/// Longest topic name we accept, in bytes. Salesforce names are far shorter;
/// the cap keeps keys and log lines bounded.
pub const MAX_TOPIC_NAME_BYTES: usize = 255;

/// What starts the stored name of every topic of a tenant other than the
/// default one: `/~<org id, 15 characters>/event/X__e`. The protocol layer
/// maps client names to stored names; this is the one segment of a topic
/// name that may start with `~`.
pub const TENANT_MARK: &str = "/~";

impl TopicName {
    /// Checks and wraps a new topic name: `/`-separated segments of ASCII
    /// letters, digits and underscores, the characters of Salesforce API
    /// names (`/event/Order_Event__e`, `/data/AccountChangeEvent`). Anything
    /// else could make a lookalike of another topic: an invisible U+200B, a
    /// U+202E that reverses the text after it, a Cyrillic `О` for a Latin
    /// `O`. A stored name's first segment may be the tenant mark
    /// (`/~00D5e000000Abcd/event/X__e`, see [`TENANT_MARK`]).
    ///
    /// # Errors
    /// A human-readable reason when the name is blank, too long, does not
    /// start with `/`, has an empty segment, or has any other character.
    pub fn parse(name: &str) -> Result<Self, String> {
        check_topic_shape(name)?;
        for (i, seg) in name.split('/').skip(1).enumerate() {
            if i == 0
                && let Some(org) = seg.strip_prefix('~')
            {
                if org.is_empty() || !org.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(format!(
                        "the topic name `{}` has a malformed tenant segment",
                        Echo(name)
                    ));
                }
                continue;
            }
            if let Some(c) = seg
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
            {
                let shown = if c.is_ascii_graphic() {
                    format!("`{c}`")
                } else {
                    format!("U+{:04X}", u32::from(c))
                };
                return Err(format!(
                    "the topic name `{}` contains {shown}; between its slashes a topic name has only ASCII letters, digits and underscores, as in `/event/Order_Event__e`",
                    Echo(name)
                ));
            }
        }
        Ok(Self(name.to_owned()))
    }

    /// Checks and wraps a name read back from storage with the rules of
    /// earlier versions (no whitespace, control characters, empty, `.` or
    /// `..` segments), so a topic created before [`TopicName::parse`] took
    /// only ASCII letters, digits and underscores stays readable.
    ///
    /// # Errors
    /// A human-readable reason.
    pub fn parse_stored(name: &str) -> Result<Self, String> {
        check_topic_shape(name)?;
        Ok(Self(name.to_owned()))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The checks every topic name passes, new or stored.
fn check_topic_shape(name: &str) -> Result<(), String> {
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
            "the topic name `{}` must start with `/`, as in `/event/Order_Event__e`",
            Echo(name)
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the topic name `{}` contains whitespace or control characters",
            Echo(name)
        ));
    }
    if name.split('/').skip(1).any(str::is_empty) {
        return Err(format!(
            "the topic name `{}` has an empty path segment",
            Echo(name)
        ));
    }
    // `.` and `..` read as paths everywhere else (the topics folder maps
    // names to files); no Salesforce topic has them.
    if name.split('/').skip(1).any(|seg| seg == "." || seg == "..") {
        return Err(format!(
            "the topic name `{}` has a `.` or `..` path segment",
            Echo(name)
        ));
    }
    Ok(())
}

/// Most bytes of a client's value that a message quotes back, escapes
/// included. Enough to recognise any id or topic name a client means to
/// send; a longer value is cut, so a 100 KB field cannot make a 100 KB
/// status message (found by the outside probe: such a trailer passed 64 KB).
pub const MAX_ECHO_BYTES: usize = 100;

/// A value a client sent, as a message quotes it back: printable ASCII as
/// it is, any other character escaped as `\u{202e}` so that an invisible
/// or bidirectional character shows instead of hiding or reordering the
/// text around it, and cut after [`MAX_ECHO_BYTES`] with `…` and the
/// value's full length.
#[derive(Clone, Copy, Debug)]
pub struct Echo<'a>(pub &'a str);

impl fmt::Display for Echo<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let mut used = 0;
        for c in self.0.chars() {
            let printable = (' '..='~').contains(&c);
            let len = if printable {
                1
            } else {
                // `\u{` + hex digits + `}`.
                let bits = u32::BITS - u32::from(c).leading_zeros();
                4 + bits.div_ceil(4).max(1) as usize
            };
            if used + len > MAX_ECHO_BYTES {
                return write!(f, "… ({} bytes)", self.0.len());
            }
            used += len;
            if printable {
                f.write_char(c)?;
            } else {
                write!(f, "\\u{{{:x}}}", u32::from(c))?;
            }
        }
        Ok(())
    }
}

/// Most bytes of a message sent to a client: a status message (before the
/// ` rpcId: <id>` it ends with) or one event's error. Our own texts are far
/// shorter; the cap holds whatever a message quotes.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// `text`, or its first [`MAX_MESSAGE_BYTES`] (cut on a character boundary)
/// followed by `…`.
pub fn clip_message(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_MESSAGE_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &text[..end]))
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

    /// The id's string, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for SchemaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant: a Salesforce org id in its one canonical form, the
/// 18-character id.
///
/// An org has two ids, 15 characters (case-sensitive) and 18 (the same 15
/// plus a case-safety suffix). Every per-tenant structure (topic
/// namespaces, managed subscriptions, limits, schema texts) is keyed by
/// this type, so both forms of one org are one tenant everywhere. The
/// suffix is always computed from the first 15 characters: an 18-character
/// id whose suffix does not match names the same org as its first 15
/// (what the tenant of a token is compared with decides who the caller is,
/// never the suffix).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    /// The tenant of an org id of 15 or 18 letters and digits.
    ///
    /// # Errors
    /// A human-readable reason for any other string.
    pub fn parse(id: &str) -> Result<Self, String> {
        let org_id = matches!(id.len(), 15 | 18) && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !org_id {
            return Err(format!(
                "`{}` is not an org id (15 or 18 letters and digits)",
                id.escape_debug()
            ));
        }
        let short = &id[..15];
        Ok(Self(format!("{short}{}", id_suffix(short))))
    }

    /// The tenant of an id read back from storage or handed over by
    /// another module: canonical when `id` is an org id (records written
    /// before tenants were canonical may hold the 15-character form), else
    /// kept as it is so a malformed record still matches only itself.
    pub fn from_stored(id: &str) -> Self {
        Self::parse(id).unwrap_or_else(|_| Self(id.to_owned()))
    }

    /// The 18-character id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 15 characters: the form stored topic names carry.
    pub fn short(&self) -> &str {
        self.0.get(..15).unwrap_or(&self.0)
    }
}

/// Read-only view of the canonical text, so a `&TenantId` goes wherever a
/// tenant `&str` is expected.
impl std::ops::Deref for TenantId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TenantId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for TenantId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for TenantId {
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

    /// The id's string, without a copy.
    pub fn into_string(self) -> String {
        self.0
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

/// Key prefix of managed-subscription ids, as Salesforce gives
/// `ManagedEventSubscription` records.
pub const MANAGED_ID_PREFIX: &str = "18x";

/// Alphabet of the three-character suffix that makes a 15-character id
/// case-insensitive (18 characters).
const ID_SUFFIX_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// The id of a managed subscription: 18 characters in the style of a
/// Salesforce record id, `18x` then 12 base-62 characters then the
/// case-safety suffix. The 15-character form (without the suffix) names the
/// same subscription.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ManagedId(String);

impl ManagedId {
    /// A fresh random id.
    pub fn generate() -> Self {
        const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let random = uuid::Uuid::new_v4().as_u128();
        let mut id = String::from(MANAGED_ID_PREFIX);
        let mut n = random;
        for _ in 0..12 {
            id.push(ALNUM[(n % 62) as usize] as char);
            n /= 62;
        }
        id.push_str(&id_suffix(&id));
        Self(id)
    }

    /// Checks an id a client sent: 15 or 18 letters and digits; the
    /// 18-character form must carry the right suffix for its first 15.
    /// Returns the 18-character form.
    ///
    /// # Errors
    /// A human-readable reason.
    pub fn parse(id: &str) -> Result<Self, String> {
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "the subscription ID `{}` may contain only letters and digits",
                Echo(id)
            ));
        }
        match id.len() {
            15 => Ok(Self(format!("{id}{}", id_suffix(id)))),
            18 if id[15..].eq_ignore_ascii_case(&id_suffix(&id[..15])) => {
                Ok(Self(format!("{}{}", &id[..15], id_suffix(&id[..15]))))
            }
            18 => Err(format!(
                "the subscription ID `{id}` has a wrong checksum suffix (its last three characters)"
            )),
            n => Err(format!(
                "the subscription ID `{}` is {n} characters long; IDs have 15 or 18 characters",
                Echo(id)
            )),
        }
    }

    /// Wraps an id read back from storage.
    pub fn from_stored(id: String) -> Self {
        Self(id)
    }

    /// The 18-character id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ManagedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a request names a managed subscription: by id or by developer name.
/// A shared value type: the engine looks subscriptions up by it and the
/// client commands parse one from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManagedRef {
    /// By id (15 or 18 characters).
    Id(String),
    /// By developer name.
    Name(String),
}

impl ManagedRef {
    /// The reference of a string that is an id if it looks like one (starts
    /// with the id prefix and has id length), else a developer name.
    pub fn guess(s: &str) -> Self {
        if s.starts_with(MANAGED_ID_PREFIX) && matches!(s.len(), 15 | 18) {
            Self::Id(s.to_owned())
        } else {
            Self::Name(s.to_owned())
        }
    }
}

/// The case-safety suffix of a 15-character id: for each block of five
/// characters, a bit per upper-case letter picks one of 32 characters.
pub fn id_suffix(id15: &str) -> String {
    id15.as_bytes()
        .chunks(5)
        .take(3)
        .map(|chunk| {
            let bits = chunk
                .iter()
                .enumerate()
                .filter(|(_, c)| c.is_ascii_uppercase())
                .fold(0usize, |acc, (i, _)| acc | (1 << i));
            ID_SUFFIX_ALPHABET[bits] as char
        })
        .collect()
}

/// Where a managed subscription starts when it has no usable commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ManagedReplay {
    /// Only events published from then on.
    Latest,
    /// The oldest retained event.
    Earliest,
}

impl std::str::FromStr for ManagedReplay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "LATEST" => Ok(Self::Latest),
            "EARLIEST" => Ok(Self::Earliest),
            _ => Err(format!("`{s}` is not a replay: use LATEST or EARLIEST")),
        }
    }
}

impl fmt::Display for ManagedReplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Latest => "LATEST",
            Self::Earliest => "EARLIEST",
        })
    }
}

/// Whether a managed subscription may be consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ManagedState {
    /// Streams may open.
    Run,
    /// Streams are refused and the commit is gone.
    Stop,
}

impl std::str::FromStr for ManagedState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "RUN" => Ok(Self::Run),
            "STOP" => Ok(Self::Stop),
            _ => Err(format!("`{s}` is not a state: use RUN or STOP")),
        }
    }
}

impl fmt::Display for ManagedState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Run => "RUN",
            Self::Stop => "STOP",
        })
    }
}

/// Longest developer name, as Salesforce allows.
pub const MAX_DEVELOPER_NAME_CHARS: usize = 80;

/// Checks a managed subscription's developer name the way Salesforce checks
/// API names: a letter first, then letters, digits and single underscores,
/// not ending with an underscore, at most 80 characters.
///
/// # Errors
/// A human-readable reason.
pub fn check_developer_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the developer name is blank".to_owned());
    }
    if name.len() > MAX_DEVELOPER_NAME_CHARS {
        return Err(format!(
            "the developer name is {} characters long; at most {MAX_DEVELOPER_NAME_CHARS} are allowed",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(format!(
            "the developer name `{}` must start with a letter",
            Echo(name)
        ));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "the developer name `{}` may contain only letters, digits and underscores",
            Echo(name)
        ));
    }
    if name.contains("__") || name.ends_with('_') {
        return Err(format!(
            "the developer name `{name}` may not contain two underscores in a row or end with one"
        ));
    }
    Ok(())
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
        assert!(TopicName::parse("/event/x..y").is_err());
        assert!(TopicName::parse("/data/Employee__ChangeEvent").is_ok());
        assert!(TopicName::parse("/event/Order_Channel__chn").is_ok());
    }

    #[test]
    fn topic_names_are_ascii_letters_digits_and_underscores() {
        for (name, says) in [
            ("/event/Order_Event__e\u{200B}", "U+200B"),
            ("/event/\u{202E}e__tnevE_redrO", "U+202E"),
            ("/event/\u{041E}rder_Event__e", "U+041E"),
            ("/event/Order\u{00AD}Event__e", "U+00AD"),
            ("/event/Order-Event__e", "`-`"),
            ("/event/Order.Event__e", "`.`"),
            ("/event/Order~Event__e", "`~`"),
            ("/event/~x/Order__e", "`~`"),
        ] {
            let err = TopicName::parse(name).expect_err(name);
            assert!(err.contains(says) && err.is_ascii(), "{name}: {err}");
        }
        // A stored name of another tenant.
        assert!(TopicName::parse("/~00D5e000000Abcd/event/A__e").is_ok());
        for bad in [
            "/~/event/A__e",
            "/~00D-5/event/A__e",
            "/~\u{200B}/event/A__e",
        ] {
            assert!(TopicName::parse(bad).is_err(), "{bad}");
        }
        // Names stored by earlier versions stay readable.
        for old in [
            "/event/Order-Event__e",
            "/event/x..y",
            "/event/Caf\u{e9}__e",
        ] {
            assert!(TopicName::parse_stored(old).is_ok(), "{old}");
            assert!(TopicName::parse(old).is_err(), "{old}");
        }
        assert!(TopicName::parse_stored("/event/a b").is_err());
    }

    #[test]
    fn echoes_escape_and_cut_what_a_client_sent() {
        assert_eq!(Echo("/event/A__e").to_string(), "/event/A__e");
        assert_eq!(
            Echo("/event/A\u{202E}B\u{200B}").to_string(),
            "/event/A\\u{202e}B\\u{200b}"
        );
        let big = "x".repeat(100 * 1024);
        let shown = Echo(&big).to_string();
        assert_eq!(
            shown,
            format!("{}… (102400 bytes)", "x".repeat(MAX_ECHO_BYTES))
        );
        // Escapes count with their length: four-byte characters cannot
        // make the echo longer than its budget either.
        let wide = "\u{1F600}".repeat(1000);
        let shown = Echo(&wide).to_string();
        assert!(shown.len() <= MAX_ECHO_BYTES + 20, "{} bytes", shown.len());
        assert!(shown.starts_with("\\u{1f600}\\u{1f600}"), "{shown}");
        assert_eq!(Echo("").to_string(), "");
    }

    #[test]
    fn messages_are_clipped_on_a_character_boundary() {
        assert_eq!(clip_message("short"), "short");
        let exact = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(clip_message(&exact), exact.as_str());
        let long = "\u{e9}".repeat(MAX_MESSAGE_BYTES);
        let clipped = clip_message(&long);
        assert!(clipped.len() <= MAX_MESSAGE_BYTES, "{}", clipped.len());
        assert!(clipped.ends_with('…'));
    }

    #[test]
    fn replay_ids_must_be_eight_bytes() {
        assert!(ReplayId::decode(b"25243248").is_ok()); // 8 ASCII bytes decode; the log rejects the value
        assert!(ReplayId::decode(b"123").is_err());
        assert!(ReplayId::decode(&[0; 10]).is_err());
        assert!(ReplayId::decode(&[]).is_err());
    }

    #[test]
    fn managed_ids_have_the_salesforce_shape() {
        let id = ManagedId::generate();
        assert_eq!(id.as_str().len(), 18);
        assert!(id.as_str().starts_with("18x"));
        assert_eq!(ManagedId::parse(id.as_str()), Ok(id.clone()));
        // The 15-character form names the same subscription.
        assert_eq!(ManagedId::parse(&id.as_str()[..15]), Ok(id.clone()));
        // The suffix is case-insensitive, the body is not.
        assert_eq!(
            ManagedId::parse(&format!(
                "{}{}",
                &id.as_str()[..15],
                id.as_str()[15..].to_lowercase()
            )),
            Ok(id)
        );
        assert!(ManagedId::parse("18x").is_err());
        assert!(ManagedId::parse("18xAAAAAAAAAAAA-").is_err());
        assert!(ManagedId::parse(&"x".repeat(19)).is_err());
    }

    #[test]
    fn the_suffix_matches_a_known_salesforce_id() {
        // A documented 15 -> 18 conversion: 001A0000006Vm9r -> 001A0000006Vm9rIAC.
        assert_eq!(
            ManagedId::parse("001A0000006Vm9r").map(|i| i.as_str().to_owned()),
            Ok("001A0000006Vm9rIAC".to_owned())
        );
        assert!(ManagedId::parse("001A0000006Vm9rAAA").is_err());
    }

    #[test]
    fn both_forms_of_an_org_id_are_one_tenant() {
        let long = TenantId::parse("00D5e000000AbcdEAC").expect("18");
        assert_eq!(long, "00D5e000000AbcdEAC");
        assert_eq!(TenantId::parse("00D5e000000Abcd"), Ok(long.clone()));
        assert_eq!(long.short(), "00D5e000000Abcd");
        // The suffix is recomputed, whatever case or value it was sent with.
        assert_eq!(TenantId::parse("00D5e000000Abcdeac"), Ok(long.clone()));
        assert_eq!(TenantId::parse("00D5e000000AbcdXYZ"), Ok(long.clone()));
        // The 15 characters are case-sensitive: another org.
        assert_ne!(TenantId::parse("00D5e000000ABCD"), Ok(long.clone()));
        // The default tenant's id is already canonical.
        assert_eq!(
            TenantId::parse("00D000000000000").map(|t| t.to_string()),
            Ok("00D000000000000EAA".to_owned())
        );
        for bad in [
            "",
            "00D5e000000Abc",
            "00D5e000000Abcd-",
            "00D5e000000AbcdEACX",
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(TenantId::from_stored("00D5e000000Abcd"), long);
        assert_eq!(TenantId::from_stored("not an org"), "not an org");
    }

    #[test]
    fn developer_names_follow_the_api_name_rules() {
        assert!(check_developer_name("Order_Fulfillment").is_ok());
        assert!(check_developer_name("A1").is_ok());
        for bad in [
            "",
            "1abc",
            "_a",
            "a__b",
            "a_",
            "a-b",
            "a b",
            &"a".repeat(81),
        ] {
            assert!(check_developer_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn replays_and_states_parse_case_insensitively() {
        assert_eq!("earliest".parse(), Ok(ManagedReplay::Earliest));
        assert_eq!("LATEST".parse(), Ok(ManagedReplay::Latest));
        assert!("custom".parse::<ManagedReplay>().is_err());
        assert_eq!("stop".parse(), Ok(ManagedState::Stop));
        assert!("pause".parse::<ManagedState>().is_err());
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
