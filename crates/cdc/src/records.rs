//! The record transaction path: create, update, delete and undelete of
//! sObject records, and the change events one transaction publishes.
//!
//! Owns: what each operation does to a stored record (system fields,
//! recycle bin), the all-or-none rule, grouping equal changes of one
//! transaction into one event with several record ids, the header of each
//! event (transaction key, sequence number, commit number, timestamp, user,
//! origin), storing with compare-and-set and publishing to the entity topic
//! and `/data/ChangeEvents`. Must not: know the wire, or encode Avro or
//! bitmaps itself (`eventbus_objects::change` does).

use std::collections::HashMap;

use serde_json::Value;

use eventbus_broker::PublishEvent;
use eventbus_channels::DataRoute;
use eventbus_core::types::{ReplayId, TenantId};
use eventbus_objects::change::{self, ChangeBody, ChangeType, Header};
use eventbus_objects::model::{FieldType, ObjectDef};
use eventbus_objects::record::{Op, Record, normalize_input};

use super::store::{Loaded, record_key};
use super::time::{now_ms, rest_datetime};
use super::{Actor, Cdc, CdcError};
use eventbus_objects::ids;

/// The counter of a tenant's commit numbers.
const COMMIT_SEQUENCE: &str = "cdc.commit";

/// One operation of a transaction.
#[derive(Clone, Debug)]
pub enum RecordOp {
    /// A new record of `object` with `fields` (REST names and forms).
    Create {
        /// The object's API name, any case.
        object: String,
        /// The fields to set.
        fields: Record,
    },
    /// Changes `fields` of record `id`; an explicit null clears a field.
    Update {
        /// The object the caller named, checked against the id's prefix.
        object: Option<String>,
        /// 15 or 18 characters.
        id: String,
        /// The fields to change.
        fields: Record,
    },
    /// Moves record `id` to the recycle bin.
    Delete {
        /// The object the caller named, if any.
        object: Option<String>,
        /// 15 or 18 characters.
        id: String,
    },
    /// Restores record `id` from the recycle bin.
    Undelete {
        /// The object the caller named, if any.
        object: Option<String>,
        /// 15 or 18 characters.
        id: String,
    },
}

/// What a committed transaction published.
#[derive(Debug, Default)]
pub struct Committed {
    /// Per operation, in order: the record id, or why it failed.
    pub results: Vec<Result<String, CdcError>>,
    /// The transaction's key, when anything was committed.
    pub transaction_key: Option<String>,
    /// Its commit number.
    pub commit_number: Option<i64>,
    /// Replay ids of its events on `/data/ChangeEvents`, in sequence order.
    pub replay_ids: Vec<ReplayId>,
}

/// One operation planned against the working state of the transaction.
struct Planned<'c> {
    obj: &'c ObjectDef,
    id: String,
    change: ChangeType,
    before: Option<Record>,
    after: Record,
}

/// A record as the transaction sees it: stored revision (0 when new) and
/// its state after the operations so far.
struct Working {
    tenant_key: String,
    revision: u64,
    stored: Option<Record>,
    current: Option<Record>,
}

/// Where an object's change events go in one org.
#[derive(Clone, Debug, Default)]
struct Enablement {
    /// Selected on the standard `ChangeEvents` channel: the entity topic and
    /// `/data/ChangeEvents`.
    standard: bool,
    /// Members of `data` custom channels.
    routes: Vec<DataRoute>,
}

/// Equal changes of one object in a transaction: one event.
struct Group<'c> {
    obj: &'c ObjectDef,
    change: ChangeType,
    body: ChangeBody,
    /// Indices into the transaction's planned operations.
    members: Vec<usize>,
}

/// The events of one transaction by topic (stored names), in first-use
/// order, for one atomic publish.
#[derive(Default)]
pub(crate) struct Parts {
    pub(crate) list: Vec<(String, Vec<PublishEvent>)>,
    /// The `/data/ChangeEvents` topic, when the transaction reaches it.
    pub(crate) multi: Option<String>,
}

impl Parts {
    pub(crate) fn push(&mut self, topic: &str, event: PublishEvent) {
        match self.list.iter_mut().find(|(t, _)| t == topic) {
            Some((_, events)) => events.push(event),
            None => self.list.push((topic.to_owned(), vec![event])),
        }
    }

    pub(crate) fn push_multi(&mut self, topic: &str, event: PublishEvent) {
        self.multi = Some(topic.to_owned());
        self.push(topic, event);
    }
}

/// A change event of `obj` ready to publish.
pub(crate) fn encoded(
    schema: &eventbus_schema::ParsedSchema,
    header: &Header,
    body: &ChangeBody,
    obj: &ObjectDef,
) -> Result<PublishEvent, CdcError> {
    let payload = change::encode(schema, header, body)
        .map_err(|e| CdcError::Internal(format!("change event of {}: {e}", obj.name)))?;
    Ok(PublishEvent {
        id: String::new(),
        schema_id: schema.id().as_str().to_owned(),
        payload: payload.into(),
        headers: Vec::new(),
    })
}

/// Fields of a record the change event and the REST API do not carry as
/// object fields.
const BOOKKEEPING: [&str; 3] = ["Id", "IsDeleted", "SystemModstamp"];

fn is_deleted(r: &Record) -> bool {
    r.get("IsDeleted").and_then(Value::as_bool).unwrap_or(false)
}

/// The record without its bookkeeping fields, as the change event's body
/// builder takes it.
fn fields_of(r: &Record) -> Record {
    r.iter()
        .filter(|(k, _)| !BOOKKEEPING.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Cdc {
    /// The record `id` (15 or 18 characters) as stored, with `Id`,
    /// `IsDeleted` and the system fields; `object`, when given, must be its
    /// object.
    ///
    /// # Errors
    /// [`CdcError::RecordNotFound`] for an unknown or malformed id,
    /// [`CdcError::EntityDeleted`] for a record in the recycle bin (which
    /// REST does not read); storage failures.
    pub async fn get(
        &self,
        tenant: &TenantId,
        object: Option<&str>,
        id: &str,
    ) -> Result<(&ObjectDef, Record), CdcError> {
        let (obj, id) = self.locate(object, id)?;
        match self.load(tenant, &record_key(&obj.name, &id)).await? {
            Some(Loaded { record, .. }) if is_deleted(&record) => Err(CdcError::EntityDeleted(id)),
            Some(Loaded { record, .. }) => Ok((obj, record)),
            None => Err(CdcError::RecordNotFound(id)),
        }
    }

    /// The object and canonical id a caller's id names.
    fn locate(&self, object: Option<&str>, id: &str) -> Result<(&ObjectDef, String), CdcError> {
        let canonical =
            ids::canonical(id).ok_or_else(|| CdcError::RecordNotFound(id.to_owned()))?;
        let obj = self
            .catalog
            .by_key_prefix(&canonical[..3])
            .ok_or_else(|| CdcError::RecordNotFound(id.to_owned()))?;
        if let Some(named) = object {
            let named = self.object(named)?;
            if named.name != obj.name {
                return Err(CdcError::RecordNotFound(id.to_owned()));
            }
        }
        Ok((obj, canonical))
    }

    /// Runs `ops` as one transaction of `actor`: each committed operation's
    /// record is stored and its change event published (equal changes of
    /// one object share an event). With `all_or_none`, one failed operation
    /// fails them all (the others with [`CdcError::RolledBack`]); otherwise
    /// the valid ones commit.
    ///
    /// # Errors
    /// Failures of the transaction as a whole (storage, topics), after
    /// which nothing of it is stored.
    pub async fn apply(
        &self,
        actor: &Actor,
        ops: Vec<RecordOp>,
        all_or_none: bool,
    ) -> Result<Committed, CdcError> {
        let lock = self.tenant_lock(&actor.tenant);
        let _guard = lock.lock().await;
        let now = now_ms();
        let mut working: HashMap<String, Working> = HashMap::new();
        let mut results: Vec<Result<String, CdcError>> = Vec::with_capacity(ops.len());
        let mut planned: Vec<Option<Planned<'_>>> = Vec::with_capacity(ops.len());
        let mut enabled: HashMap<String, Enablement> = HashMap::new();
        for op in ops {
            match self.plan(actor, op, now, &mut working, &mut enabled).await {
                Ok(p) => {
                    results.push(Ok(p.id.clone()));
                    planned.push(Some(p));
                }
                Err(e) if e.is_server_error() => return Err(e),
                Err(e) => {
                    results.push(Err(e));
                    planned.push(None);
                }
            }
        }
        if all_or_none && results.iter().any(Result::is_err) {
            let results = results
                .into_iter()
                .map(|r| r.and(Err(CdcError::RolledBack)))
                .collect();
            return Ok(Committed {
                results,
                ..Committed::default()
            });
        }
        let planned: Vec<Planned<'_>> = planned.into_iter().flatten().collect();
        if planned.is_empty() {
            return Ok(Committed {
                results,
                ..Committed::default()
            });
        }
        // The events: equal changes of one object share one.
        let mut groups: Vec<Group<'_>> = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            let after = (!matches!(p.change, ChangeType::Delete)).then_some(&p.after);
            let body = change::body(p.obj, p.change, p.before.as_ref(), after);
            match groups
                .iter_mut()
                .find(|g| g.obj.name == p.obj.name && g.change == p.change && g.body == body)
            {
                Some(g) => g.members.push(i),
                None => groups.push(Group {
                    obj: p.obj,
                    change: p.change,
                    body,
                    members: vec![i],
                }),
            }
        }
        let seq = self
            .log
            .next_in_sequence(&actor.tenant, COMMIT_SEQUENCE, 1)
            .await?;
        let commit_number = commit_number(self.cfg.first_commit_number, seq);
        let transaction_key = uuid::Uuid::new_v4().to_string();
        let mut parts = Parts::default();
        for (n, g) in groups.iter().enumerate() {
            let header = Header {
                entity_name: g.obj.name.clone(),
                record_ids: g.members.iter().map(|&i| planned[i].id.clone()).collect(),
                change_type: g.change,
                change_origin: actor.origin.clone(),
                transaction_key: transaction_key.clone(),
                sequence_number: i32::try_from(n + 1).unwrap_or(i32::MAX),
                commit_timestamp: now,
                commit_number,
                commit_user: actor.user_id.clone(),
            };
            let schema = self.schema_of(g.obj)?;
            let on = enabled.get(&g.obj.name).cloned().unwrap_or_default();
            if on.standard {
                let event = encoded(schema, &header, &g.body, g.obj)?;
                let (entity, multi) = self.ensure_topics(&actor.tenant, g.obj).await?;
                parts.push(entity.as_str(), event.clone());
                parts.push_multi(multi.as_str(), event);
            }
            for route in &on.routes {
                self.route_change(g, &header, &planned, route, schema, &mut parts)
                    .await?;
            }
        }
        // Store every record, then publish; put the records back if either
        // step fails.
        let mut written: Vec<(String, Option<Record>, u64)> = Vec::new();
        for w in working.values() {
            let Some(current) = &w.current else { continue };
            if w.stored.as_ref() == Some(current) {
                continue;
            }
            match self
                .save(&actor.tenant, &w.tenant_key, current, w.revision)
                .await
            {
                Ok(Some(rev)) => written.push((w.tenant_key.clone(), w.stored.clone(), rev)),
                Ok(None) => {
                    self.put_back(&actor.tenant, written).await;
                    return Err(CdcError::Locked(w.tenant_key.clone()));
                }
                Err(e) => {
                    self.put_back(&actor.tenant, written).await;
                    return Err(e);
                }
            }
        }
        let published = self.publish_parts(parts).await;
        let replay_ids = match published {
            Ok(ids) => ids,
            Err(e) => {
                self.put_back(&actor.tenant, written).await;
                return Err(e);
            }
        };
        Ok(Committed {
            results,
            transaction_key: Some(transaction_key),
            commit_number: Some(commit_number),
            replay_ids,
        })
    }

    /// Appends every part in one atomic step (the entity topics,
    /// `/data/ChangeEvents`, data channels); the replay ids on
    /// `/data/ChangeEvents` (of the first part when it has none).
    pub(crate) async fn publish_parts(&self, parts: Parts) -> Result<Vec<ReplayId>, CdcError> {
        if parts.list.is_empty() {
            return Ok(Vec::new());
        }
        let multi = parts.multi.clone();
        let names: Vec<String> = parts.list.iter().map(|(t, _)| t.clone()).collect();
        let receipts = self.broker.publish_many(parts.list).await?;
        let mut replay_ids = Vec::new();
        for (name, receipt) in names.iter().zip(&receipts) {
            let ids = check_receipt(name, &receipt.outcomes)?;
            if multi.as_deref() == Some(name.as_str()) || (multi.is_none() && replay_ids.is_empty())
            {
                replay_ids = ids;
            }
        }
        Ok(replay_ids)
    }

    /// The events of group `g` on the data channel `route`: each record of
    /// the group whose state after the change passes the member's filter;
    /// records with equal enriched values share an event. UPDATE and DELETE
    /// events carry the enriched fields' current values.
    async fn route_change(
        &self,
        g: &Group<'_>,
        header: &Header,
        planned: &[Planned<'_>],
        route: &DataRoute,
        schema: &eventbus_schema::ParsedSchema,
        parts: &mut Parts,
    ) -> Result<(), CdcError> {
        let mut shared: Vec<(Record, Vec<String>)> = Vec::new();
        for &i in &g.members {
            let p = &planned[i];
            let state = if matches!(p.change, ChangeType::Delete) {
                p.before.as_ref().unwrap_or(&p.after)
            } else {
                &p.after
            };
            let full = change::body(p.obj, ChangeType::Create, None, Some(state)).values;
            if let Some(filter) = &route.filter {
                let one = Header {
                    record_ids: vec![p.id.clone()],
                    ..header.clone()
                };
                let seen = change::event_json(
                    &one,
                    &ChangeBody {
                        values: full.clone(),
                        ..ChangeBody::default()
                    },
                );
                if !filter.matches(&seen) {
                    continue;
                }
            }
            let mut extra = Record::new();
            if matches!(p.change, ChangeType::Update | ChangeType::Delete) {
                for name in &route.enriched {
                    let Some((_, f)) = p.obj.field(name) else {
                        continue;
                    };
                    if !g.body.values.contains_key(&f.name) {
                        extra.insert(
                            f.name.clone(),
                            full.get(&f.name).cloned().unwrap_or(Value::Null),
                        );
                    }
                }
            }
            match shared.iter_mut().find(|(e, _)| *e == extra) {
                Some((_, ids)) => ids.push(p.id.clone()),
                None => shared.push((extra, vec![p.id.clone()])),
            }
        }
        if shared.is_empty() {
            return Ok(());
        }
        let channels = self
            .channels
            .as_ref()
            .ok_or_else(|| CdcError::Internal("data routes without channels".to_owned()))?;
        channels.ensure_schema(&route.topic, schema).await?;
        for (extra, ids) in shared {
            let mut body = g.body.clone();
            body.values.extend(extra);
            let one = Header {
                record_ids: ids,
                ..header.clone()
            };
            parts.push(&route.topic, encoded(schema, &one, &body, g.obj)?);
        }
        Ok(())
    }

    /// Restores records written by a transaction that then failed. Best
    /// effort: a record another writer changed since is left as it is.
    async fn put_back(&self, tenant: &TenantId, written: Vec<(String, Option<Record>, u64)>) {
        for (key, old, rev) in written {
            let outcome = match old {
                Some(old) => self.save(tenant, &key, &old, rev).await.map(|_| ()),
                None => self
                    .log
                    .delete_record(tenant, &key, rev)
                    .await
                    .map(|_| ())
                    .map_err(CdcError::from),
            };
            if let Err(e) = outcome {
                tracing::warn!(record = %key, error = %e, "could not put a record back after a failed transaction");
            }
        }
    }

    /// Plans one operation against the transaction's working state.
    async fn plan<'c>(
        &'c self,
        actor: &Actor,
        op: RecordOp,
        now: i64,
        working: &mut HashMap<String, Working>,
        enabled: &mut HashMap<String, Enablement>,
    ) -> Result<Planned<'c>, CdcError> {
        let stamp = Value::String(rest_datetime(now));
        let user = Value::String(actor.user_id.clone());
        match op {
            RecordOp::Create { object, fields } => {
                let obj = self.object(&object)?;
                self.check_enabled(&actor.tenant, obj, enabled).await?;
                let input = normalize_input(obj, &fields, Op::Create).map_err(CdcError::Field)?;
                let n = self
                    .log
                    .next_in_sequence(&actor.tenant, &format!("cdc.id.{}", obj.key_prefix), 1)
                    .await?;
                let id = ids::record_id(&obj.key_prefix, n);
                let mut after = Record::new();
                after.insert("Id".to_owned(), Value::String(id.clone()));
                for f in &obj.fields {
                    if matches!(f.ty, FieldType::Boolean) && f.updateable {
                        after.insert(f.name.clone(), Value::Bool(f.default_on));
                    }
                }
                for (k, v) in input {
                    if !v.is_null() {
                        after.insert(k, v);
                    }
                }
                if obj.fields.iter().any(|f| f.name == "OwnerId") && !after.contains_key("OwnerId")
                {
                    after.insert("OwnerId".to_owned(), user.clone());
                }
                after.insert("IsDeleted".to_owned(), Value::Bool(false));
                after.insert("CreatedDate".to_owned(), stamp.clone());
                after.insert("CreatedById".to_owned(), user.clone());
                after.insert("LastModifiedDate".to_owned(), stamp.clone());
                after.insert("LastModifiedById".to_owned(), user);
                after.insert("SystemModstamp".to_owned(), stamp);
                let key = record_key(&obj.name, &id);
                working.insert(
                    key.clone(),
                    Working {
                        tenant_key: key,
                        revision: 0,
                        stored: None,
                        current: Some(after.clone()),
                    },
                );
                Ok(Planned {
                    obj,
                    id,
                    change: ChangeType::Create,
                    before: None,
                    after: fields_of(&after),
                })
            }
            RecordOp::Update { object, id, fields } => {
                let (obj, id) = self.locate(object.as_deref(), &id)?;
                self.check_enabled(&actor.tenant, obj, enabled).await?;
                let input = normalize_input(obj, &fields, Op::Update).map_err(CdcError::Field)?;
                let before = self.current(&actor.tenant, obj, &id, working).await?;
                if is_deleted(&before) {
                    return Err(CdcError::EntityDeleted(id));
                }
                let mut after = before.clone();
                for (k, v) in input {
                    if v.is_null() {
                        after.remove(&k);
                    } else {
                        after.insert(k, v);
                    }
                }
                after.insert("LastModifiedDate".to_owned(), stamp.clone());
                after.insert("LastModifiedById".to_owned(), user);
                after.insert("SystemModstamp".to_owned(), stamp);
                self.stage(obj, &id, &after, working);
                Ok(Planned {
                    obj,
                    id,
                    change: ChangeType::Update,
                    before: Some(fields_of(&before)),
                    after: fields_of(&after),
                })
            }
            RecordOp::Delete { object, id } => {
                let (obj, id) = self.locate(object.as_deref(), &id)?;
                self.check_enabled(&actor.tenant, obj, enabled).await?;
                let before = self.current(&actor.tenant, obj, &id, working).await?;
                if is_deleted(&before) {
                    return Err(CdcError::EntityDeleted(id));
                }
                let mut after = before.clone();
                after.insert("IsDeleted".to_owned(), Value::Bool(true));
                after.insert("SystemModstamp".to_owned(), stamp);
                self.stage(obj, &id, &after, working);
                Ok(Planned {
                    obj,
                    id,
                    change: ChangeType::Delete,
                    before: Some(fields_of(&before)),
                    after: fields_of(&after),
                })
            }
            RecordOp::Undelete { object, id } => {
                let (obj, id) = self.locate(object.as_deref(), &id)?;
                self.check_enabled(&actor.tenant, obj, enabled).await?;
                let before = self.current(&actor.tenant, obj, &id, working).await?;
                if !is_deleted(&before) {
                    return Err(CdcError::NotDeleted(id));
                }
                let mut after = before.clone();
                after.insert("IsDeleted".to_owned(), Value::Bool(false));
                after.insert("SystemModstamp".to_owned(), stamp);
                self.stage(obj, &id, &after, working);
                Ok(Planned {
                    obj,
                    id,
                    change: ChangeType::Undelete,
                    before: Some(fields_of(&before)),
                    after: fields_of(&after),
                })
            }
        }
    }

    /// Where `obj`'s change events go in `tenant` (looked up once per
    /// transaction): refused when nowhere, as its records may not change.
    async fn check_enabled(
        &self,
        tenant: &TenantId,
        obj: &ObjectDef,
        enabled: &mut HashMap<String, Enablement>,
    ) -> Result<(), CdcError> {
        if !enabled.contains_key(&obj.name) {
            let standard = self.is_enabled(tenant, obj).await?;
            let routes = match &self.channels {
                Some(c) => c.data_routes(tenant, &obj.change_event_name()).await?,
                None => Vec::new(),
            };
            enabled.insert(obj.name.clone(), Enablement { standard, routes });
        }
        match enabled.get(&obj.name) {
            Some(on) if on.standard || !on.routes.is_empty() => Ok(()),
            _ => Err(CdcError::NotEnabled(obj.name.clone())),
        }
    }

    /// The record as the transaction sees it now (loaded once).
    async fn current(
        &self,
        tenant: &TenantId,
        obj: &ObjectDef,
        id: &str,
        working: &mut HashMap<String, Working>,
    ) -> Result<Record, CdcError> {
        let key = record_key(&obj.name, id);
        if !working.contains_key(&key) {
            let loaded = self.load(tenant, &key).await?;
            let (revision, stored) = match loaded {
                Some(l) => (l.revision, Some(l.record)),
                None => (0, None),
            };
            working.insert(
                key.clone(),
                Working {
                    tenant_key: key.clone(),
                    revision,
                    current: stored.clone(),
                    stored,
                },
            );
        }
        working
            .get(&key)
            .and_then(|w| w.current.clone())
            .ok_or_else(|| CdcError::RecordNotFound(id.to_owned()))
    }

    fn stage(
        &self,
        obj: &ObjectDef,
        id: &str,
        after: &Record,
        working: &mut HashMap<String, Working>,
    ) {
        if let Some(w) = working.get_mut(&record_key(&obj.name, id)) {
            w.current = Some(after.clone());
        }
    }
}

/// The commit number of a tenant's `seq`-th transaction (1-based).
pub(crate) fn commit_number(first: u64, seq: u64) -> i64 {
    i64::try_from(first.saturating_add(seq.saturating_sub(1))).unwrap_or(i64::MAX)
}

/// The replay ids of a publish of engine-built events; any refused event is
/// a bug (the engine built it from the topic's own schema).
fn check_receipt(
    topic: &str,
    outcomes: &[eventbus_broker::PublishOutcome],
) -> Result<Vec<ReplayId>, CdcError> {
    outcomes
        .iter()
        .map(|o| {
            o.result.clone().map_err(|e| {
                CdcError::Internal(format!("a change event for {topic} was refused: {e}"))
            })
        })
        .collect()
}
