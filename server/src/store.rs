//! [`SqliteStore`]: the service's state in one SQLite file.
//!
//! - **One file**, created on first open, in WAL mode with foreign keys on. The schema version
//!   is `PRAGMA user_version`; [`SqliteStore::open`] migrates older files step by step (each
//!   step in its own transaction) and refuses a file written by a newer slup-server with
//!   [`Code::RecordFromNewerVersion`].
//! - **Nothing half-written**: every mutating call of [`ServiceStore`] runs inside a
//!   `SAVEPOINT`, so it is its own transaction when called alone, and nests inside the batch
//!   the HTTP server opens around one request ([`SqliteStore::begin`] /
//!   [`SqliteStore::commit`]): an answer is sent only after everything it acknowledges is
//!   committed.
//! - **Durability**: `synchronous=FULL` by default (every commit is fsynced in the WAL before
//!   the answer goes out); [`Durability::Normal`] trades power-loss safety of the last commits
//!   for speed (still crash-safe for the process).
//!
//! Integers the protocol keeps as `u64` (report ids, counts, timestamps) are stored as the
//! `i64` with the same bits, so every value round-trips exactly.

use std::cell::RefCell;
use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use slup_core::crypto::PublicKey;
use slup_core::msg::policy::Policy;
use slup_core::msg::Writer;
use slup_core::server::store::{
    fixed, InstanceRecord, MemberRecord, Name, PiId, PollRecord, RejectReason, ReportRecord, SaId,
    ServiceStore, StoredAck, StoredPolicy, TokenId, TokenRecord, UdiBuf, VaId, VirtualAccount,
};
use slup_core::types::{ReportId, Role, Timestamp, TrustId, Udi};
use slup_core::Code;

/// The schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// How hard a commit waits for the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a committed answer survives a power cut.
    Full,
    /// `synchronous=NORMAL` in WAL mode: survives a process crash; the last commits may be
    /// lost on power failure (the WAL is fsynced at checkpoints only).
    Normal,
}

/// One migration step: the SQL that takes the schema from `version - 1` to `version`.
struct Migration {
    version: u32,
    sql: &'static str,
}

/// Every step, in order. A released step never changes: add a new one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    sql: "
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY NOT NULL,
            value BLOB NOT NULL
        ) STRICT;
        CREATE TABLE smart_accounts (
            id   INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE
        ) STRICT;
        CREATE TABLE virtual_accounts (
            id            INTEGER PRIMARY KEY,
            smart_account INTEGER NOT NULL REFERENCES smart_accounts(id),
            name          TEXT NOT NULL,
            -- The policy as its wire JSON; NULL sends `null`.
            policy        TEXT,
            UNIQUE (smart_account, name)
        ) STRICT;
        CREATE TABLE tokens (
            id                INTEGER PRIMARY KEY,
            text              TEXT NOT NULL UNIQUE,
            virtual_account   INTEGER NOT NULL REFERENCES virtual_accounts(id),
            max_uses          INTEGER NOT NULL,
            uses              INTEGER NOT NULL,
            expires_at        INTEGER NOT NULL,
            export_controlled INTEGER NOT NULL,
            created_at        INTEGER NOT NULL DEFAULT (unixepoch() * 1000)
        ) STRICT;
        CREATE TABLE instances (
            id                INTEGER PRIMARY KEY,
            uuid              TEXT NOT NULL,
            virtual_account   INTEGER NOT NULL REFERENCES virtual_accounts(id),
            token             INTEGER NOT NULL REFERENCES tokens(id),
            export_controlled INTEGER NOT NULL,
            removed           INTEGER NOT NULL,
            trusted_at        INTEGER NOT NULL,
            last_contact      INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX instances_uuid ON instances(uuid);
        CREATE TABLE members (
            instance   INTEGER NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
            position   INTEGER NOT NULL,
            role       TEXT NOT NULL,
            udi_pid    TEXT NOT NULL,
            udi_serial TEXT NOT NULL,
            public_key BLOB NOT NULL,
            trust_id   INTEGER NOT NULL,
            PRIMARY KEY (instance, position)
        ) STRICT;
        CREATE INDEX members_udi ON members(udi_pid, udi_serial);
        CREATE TABLE reports (
            udi_pid        TEXT NOT NULL,
            udi_serial     TEXT NOT NULL,
            report_id      INTEGER NOT NULL,
            instance       INTEGER NOT NULL REFERENCES instances(id),
            payload_sha256 BLOB NOT NULL,
            entitlement    TEXT NOT NULL,
            count          INTEGER NOT NULL,
            received_at    INTEGER NOT NULL,
            PRIMARY KEY (udi_pid, udi_serial, report_id)
        ) STRICT, WITHOUT ROWID;
        CREATE INDEX reports_instance ON reports(instance);
        CREATE TABLE polls (
            poll_id    TEXT PRIMARY KEY NOT NULL,
            instance   INTEGER NOT NULL REFERENCES instances(id),
            -- `acked` ids, and `rejected` as `id:reason` pairs, comma-separated.
            acked      TEXT NOT NULL,
            rejected   TEXT NOT NULL,
            created_at INTEGER NOT NULL
        ) STRICT;
    ",
}];

/// Why an atomic step stopped: SQLite failed, or the step refused with a code.
enum Fail {
    Sql(rusqlite::Error),
    Code(Code),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

/// A [`ServiceStore`] in one SQLite file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    /// The last storage failure, for the log line and the operator.
    last_error: RefCell<Option<String>>,
}

/// An instance as the operator sees it: its row id and record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRow {
    /// The row id (`instances show <id>`).
    pub id: PiId,
    /// The record.
    pub record: InstanceRecord,
    /// Distinct reports it delivered.
    pub reports: usize,
}

/// A token as the operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRow {
    /// The row id.
    pub id: TokenId,
    /// The record.
    pub record: TokenRecord,
}

/// What [`SqliteStore::open`] could not do.
#[derive(Debug)]
pub struct OpenError {
    /// The stable code.
    pub code: Code,
    /// What happened, for the operator.
    pub message: String,
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for OpenError {}

fn open_error(code: Code, e: impl std::fmt::Display) -> OpenError {
    OpenError {
        code,
        message: e.to_string(),
    }
}

/// The `u64` a column holds with the same bits.
fn u64_of(v: i64) -> u64 {
    u64::from_ne_bytes(v.to_ne_bytes())
}

/// The column value holding `v`'s bits.
fn i64_of(v: u64) -> i64 {
    i64::from_ne_bytes(v.to_ne_bytes())
}

fn id32(rowid: i64) -> Result<u32, Code> {
    u32::try_from(rowid).map_err(|_| Code::CapacityExceeded)
}

fn role_text(r: Role) -> &'static str {
    match r {
        Role::Active => "Active",
        Role::Standby => "Standby",
        Role::Member => "Member",
    }
}

fn role_of(s: &str) -> Result<Role, Code> {
    match s {
        "Active" => Ok(Role::Active),
        "Standby" => Ok(Role::Standby),
        "Member" => Ok(Role::Member),
        _ => Err(Code::RecordCorrupt),
    }
}

const REASONS: [(RejectReason, &str); 4] = [
    (RejectReason::BadSignature, "bad_signature"),
    (RejectReason::WrongKey, "wrong_key"),
    (RejectReason::ForeignUnit, "foreign_unit"),
    (RejectReason::ConflictingDuplicate, "conflicting_duplicate"),
];

fn reason_text(r: RejectReason) -> &'static str {
    REASONS
        .iter()
        .find(|(x, _)| *x == r)
        .map_or("bad_signature", |(_, s)| s)
}

fn reason_of(s: &str) -> Result<RejectReason, Code> {
    REASONS
        .iter()
        .find(|(_, t)| *t == s)
        .map(|(r, _)| *r)
        .ok_or(Code::RecordCorrupt)
}

/// `acked` and `rejected` columns of a stored ACK.
fn ack_columns(ack: &StoredAck) -> (String, String) {
    let acked: Vec<String> = ack.acked.iter().map(|id| id.0.to_string()).collect();
    let rejected: Vec<String> = ack
        .rejected
        .iter()
        .map(|(id, why)| format!("{}:{}", id.0, reason_text(*why)))
        .collect();
    (acked.join(","), rejected.join(","))
}

fn ack_of(acked: &str, rejected: &str) -> Result<StoredAck, Code> {
    let mut ack = StoredAck::default();
    let id = |s: &str| {
        s.parse::<u64>()
            .map(ReportId)
            .map_err(|_| Code::RecordCorrupt)
    };
    for s in acked.split(',').filter(|s| !s.is_empty()) {
        ack.acked.push(id(s)?).map_err(|_| Code::RecordCorrupt)?;
    }
    for s in rejected.split(',').filter(|s| !s.is_empty()) {
        let (n, why) = s.split_once(':').ok_or(Code::RecordCorrupt)?;
        ack.rejected
            .push((id(n)?, reason_of(why)?))
            .map_err(|_| Code::RecordCorrupt)?;
    }
    Ok(ack)
}

/// A policy's wire JSON.
fn policy_json(p: &StoredPolicy) -> Result<String, Code> {
    let mut buf = [0u8; 2048];
    let mut w = Writer::new(&mut buf);
    w.json(&p.policy(), "policy").map_err(|e| e.code)?;
    String::from_utf8(w.written().to_vec()).map_err(|_| Code::InvalidUtf8)
}

fn policy_of(json: &str) -> Result<StoredPolicy, Code> {
    let p = Policy::decode(json.as_bytes()).map_err(|_| Code::RecordCorrupt)?;
    StoredPolicy::from_policy(&p)
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` with [`Durability::Full`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with(path, Durability::Full)
    }

    /// Opens (or creates) the database at `path`, migrating an older schema.
    ///
    /// A file whose schema is newer than [`SCHEMA_VERSION`] is
    /// [`Code::RecordFromNewerVersion`] and is left untouched; a file that is not SQLite is
    /// [`Code::RecordCorrupt`]; anything else the file system refuses is [`Code::StorageIo`].
    pub fn open_with(path: impl AsRef<Path>, durability: Durability) -> Result<Self, OpenError> {
        let path = path.as_ref();
        let conn = Connection::open(path)
            .map_err(|e| open_error(Code::StorageIo, format!("{}: {e}", path.display())))?;
        let version: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| {
                open_error(
                    Code::RecordCorrupt,
                    format!("{} is not a slup-server database: {e}", path.display()),
                )
            })?;
        if version > SCHEMA_VERSION {
            return Err(open_error(
                Code::RecordFromNewerVersion,
                format!(
                    "{} has schema version {version}; this slup-server reads up to {SCHEMA_VERSION}",
                    path.display()
                ),
            ));
        }
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        let setup = format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; \
             PRAGMA busy_timeout=5000;"
        );
        conn.execute_batch(&setup)
            .map_err(|e| open_error(Code::StorageIo, format!("{}: {e}", path.display())))?;
        let mut store = SqliteStore {
            conn,
            last_error: RefCell::new(None),
        };
        store.migrate(version)?;
        Ok(store)
    }

    /// Applies every migration after `from`, each in its own transaction.
    fn migrate(&mut self, from: u32) -> Result<(), OpenError> {
        for m in MIGRATIONS.iter().filter(|m| m.version > from) {
            let tx = self
                .conn
                .transaction()
                .map_err(|e| open_error(Code::StorageIo, e))?;
            tx.execute_batch(m.sql)
                .and_then(|()| tx.pragma_update(None, "user_version", m.version))
                .and_then(|()| tx.commit())
                .map_err(|e| {
                    open_error(
                        Code::StorageIo,
                        format!("migration to schema {}: {e}", m.version),
                    )
                })?;
        }
        Ok(())
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32, Code> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.fail(e))
    }

    /// Records a storage failure and maps it to its code.
    fn fail(&self, e: rusqlite::Error) -> Code {
        use rusqlite::ErrorCode as E;
        let code = match e.sqlite_error_code() {
            Some(E::DiskFull) => Code::StorageFull,
            Some(E::ConstraintViolation) => Code::InvalidArgument,
            Some(E::DatabaseCorrupt | E::NotADatabase) => Code::RecordCorrupt,
            _ => match e {
                rusqlite::Error::IntegralValueOutOfRange(..)
                | rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::InvalidColumnType(..) => Code::RecordCorrupt,
                _ => Code::StorageIo,
            },
        };
        *self.last_error.borrow_mut() = Some(e.to_string());
        code
    }

    /// The last storage failure's text, taken (so each is reported once).
    pub fn take_last_error(&self) -> Option<String> {
        self.last_error.borrow_mut().take()
    }

    /// Opens a batch: every call until [`SqliteStore::commit`] or [`SqliteStore::rollback`]
    /// is one transaction. The HTTP server wraps each request in one, so a request's writes
    /// land together and cost one commit.
    pub fn begin(&mut self) -> Result<(), Code> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.fail(e))
    }

    /// Commits the open batch.
    pub fn commit(&mut self) -> Result<(), Code> {
        self.conn.execute_batch("COMMIT").map_err(|e| self.fail(e))
    }

    /// Drops the open batch; nothing of it stays.
    pub fn rollback(&mut self) {
        // Rolling back outside a transaction is the only failure, and then nothing is open.
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    /// Runs `f` all or nothing: its own transaction, or a savepoint inside a batch. An error
    /// rolls back everything `f` wrote.
    fn atomic<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T, Fail>) -> Result<T, Code> {
        let result = (|| {
            let sp = self.conn.savepoint()?;
            let v = f(&sp)?;
            sp.commit()?;
            Ok(v)
        })();
        result.map_err(|e| match e {
            Fail::Sql(e) => self.fail(e),
            Fail::Code(c) => c,
        })
    }

    /// A value of the `meta` table.
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, Code> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// Sets a value of the `meta` table.
    pub fn set_meta(&mut self, key: &str, value: &[u8]) -> Result<(), Code> {
        self.atomic(|c| {
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )?;
            Ok(())
        })
    }

    /// The value of `key`, or `make()` stored under it when absent: one transaction, so two
    /// processes starting together agree on one value.
    pub fn meta_or_insert(
        &mut self,
        key: &str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>, Code> {
        self.atomic(|c| {
            let have: Option<Vec<u8>> = c
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?;
            if let Some(v) = have {
                return Ok(v);
            }
            let v = make();
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)",
                params![key, &v],
            )?;
            Ok(v)
        })
    }

    /// Every smart account: id and name.
    pub fn smart_accounts(&self) -> Result<Vec<(SaId, String)>, Code> {
        let mut out = Vec::new();
        let rows = (|| {
            let mut st = self
                .conn
                .prepare("SELECT id, name FROM smart_accounts ORDER BY id")?;
            let it = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
            it.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.fail(e))?;
        for (id, name) in rows {
            out.push((SaId(id32(id)?), name));
        }
        Ok(out)
    }

    /// Every virtual account named `name`, in any smart account.
    pub fn virtual_accounts_named(&self, name: &str) -> Result<Vec<VaId>, Code> {
        let ids = (|| {
            let mut st = self
                .conn
                .prepare("SELECT id FROM virtual_accounts WHERE name = ?1 ORDER BY id")?;
            let it = st.query_map([name], |r| r.get::<_, i64>(0))?;
            it.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.fail(e))?;
        ids.into_iter().map(|id| id32(id).map(VaId)).collect()
    }

    /// Every token, oldest first.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, Code> {
        let rows = (|| {
            let mut st = self.conn.prepare(
                "SELECT id, text, virtual_account, max_uses, uses, expires_at, export_controlled
                 FROM tokens ORDER BY id",
            )?;
            let it = st.query_map([], |r| Ok((r.get::<_, i64>(0)?, token_cols(r, 1)?)))?;
            it.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.fail(e))?;
        rows.into_iter()
            .map(|(id, cols)| {
                Ok(TokenRow {
                    id: TokenId(id32(id)?),
                    record: cols.record()?,
                })
            })
            .collect()
    }

    /// Every product instance (removed ones too), oldest first, with its report count.
    pub fn instances(&self) -> Result<Vec<InstanceRow>, Code> {
        let ids = (|| {
            let mut st = self.conn.prepare("SELECT id FROM instances ORDER BY id")?;
            let it = st.query_map([], |r| r.get::<_, i64>(0))?;
            it.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.fail(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let pi = PiId(id32(id)?);
            if let Some(record) = self.instance(pi)? {
                out.push(InstanceRow {
                    id: pi,
                    reports: self.report_count(pi)?,
                    record,
                });
            }
        }
        Ok(out)
    }

    /// The instance with this `product_instance_identifier`.
    pub fn instance_by_uuid(&self, uuid: &str) -> Result<Option<PiId>, Code> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM instances WHERE uuid = ?1 ORDER BY removed, id DESC LIMIT 1",
                [uuid],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        id.map(|i| id32(i).map(PiId)).transpose()
    }

    /// Every stored report in arrival order (tests and `instances show`).
    pub fn reports_of(&self, instance: PiId) -> Result<Vec<ReportRecord>, Code> {
        let rows = (|| {
            let mut st = self.conn.prepare(
                "SELECT udi_pid, udi_serial, report_id, instance, payload_sha256, entitlement,
                        count, received_at
                 FROM reports WHERE instance = ?1 ORDER BY received_at, report_id",
            )?;
            let it = st.query_map([i64::from(instance.0)], report_cols)?;
            it.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.fail(e))?;
        rows.into_iter().map(ReportCols::record).collect()
    }

    /// `smart account / virtual account` for listings (`?` for a missing part).
    pub fn account_label(&self, va: VaId) -> String {
        let Ok(Some(v)) = self.virtual_account(va) else {
            return format!("? / #{}", va.0);
        };
        let sa = self
            .smart_account_name(v.smart_account)
            .ok()
            .flatten()
            .map_or_else(|| "?".to_owned(), |n| n.as_str().to_owned());
        format!("{sa} / {}", v.name)
    }

    /// Pending poll results: poll id and instance, oldest first.
    pub fn polls(&self) -> Result<Vec<(String, PiId)>, Code> {
        let rows = (|| {
            let mut st = self
                .conn
                .prepare("SELECT poll_id, instance FROM polls ORDER BY created_at, rowid")?;
            let it = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
            it.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.fail(e))?;
        rows.into_iter()
            .map(|(p, i)| Ok((p, PiId(id32(i)?))))
            .collect()
    }

    /// Stored reports in all, and pending polls.
    pub fn totals(&self) -> Result<(u64, u64), Code> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM reports), (SELECT count(*) FROM polls)",
                [],
                |r| Ok((u64_of(r.get(0)?), u64_of(r.get(1)?))),
            )
            .map_err(|e| self.fail(e))
    }
}

/// A token row's columns, before they are checked.
struct TokenCols {
    text: String,
    va: i64,
    max_uses: i64,
    uses: i64,
    expires_at: i64,
    export: bool,
}

fn token_cols(r: &Row<'_>, at: usize) -> rusqlite::Result<TokenCols> {
    Ok(TokenCols {
        text: r.get(at)?,
        va: r.get(at + 1)?,
        max_uses: r.get(at + 2)?,
        uses: r.get(at + 3)?,
        expires_at: r.get(at + 4)?,
        export: r.get(at + 5)?,
    })
}

impl TokenCols {
    fn record(self) -> Result<TokenRecord, Code> {
        let u32c = |v: i64| u32::try_from(v).map_err(|_| Code::RecordCorrupt);
        Ok(TokenRecord {
            text: fixed(&self.text).map_err(|_| Code::RecordCorrupt)?,
            virtual_account: VaId(u32c(self.va)?),
            max_uses: u32c(self.max_uses)?,
            uses: u32c(self.uses)?,
            expires_at: Timestamp(u64_of(self.expires_at)),
            export_controlled: self.export,
        })
    }
}

/// A report row's columns, before they are checked.
struct ReportCols {
    pid: String,
    serial: String,
    report_id: i64,
    instance: i64,
    sha: Vec<u8>,
    entitlement: String,
    count: i64,
    received_at: i64,
}

fn report_cols(r: &Row<'_>) -> rusqlite::Result<ReportCols> {
    Ok(ReportCols {
        pid: r.get(0)?,
        serial: r.get(1)?,
        report_id: r.get(2)?,
        instance: r.get(3)?,
        sha: r.get(4)?,
        entitlement: r.get(5)?,
        count: r.get(6)?,
        received_at: r.get(7)?,
    })
}

impl ReportCols {
    fn record(self) -> Result<ReportRecord, Code> {
        let corrupt = |_| Code::RecordCorrupt;
        Ok(ReportRecord {
            instance: PiId(id32(self.instance).map_err(corrupt)?),
            udi: UdiBuf {
                pid: fixed(&self.pid).map_err(corrupt)?,
                serial: fixed(&self.serial).map_err(corrupt)?,
            },
            report_id: ReportId(u64_of(self.report_id)),
            payload_sha256: self.sha.try_into().map_err(|_| Code::RecordCorrupt)?,
            entitlement: fixed(&self.entitlement).map_err(corrupt)?,
            count: u64_of(self.count),
            received_at: Timestamp(u64_of(self.received_at)),
        })
    }
}

/// A member row's columns, before they are checked.
struct MemberCols {
    role: String,
    pid: String,
    serial: String,
    key: Vec<u8>,
    trust_id: i64,
}

impl MemberCols {
    fn record(self) -> Result<MemberRecord, Code> {
        let corrupt = |_| Code::RecordCorrupt;
        Ok(MemberRecord {
            role: role_of(&self.role)?,
            udi: UdiBuf {
                pid: fixed(&self.pid).map_err(corrupt)?,
                serial: fixed(&self.serial).map_err(corrupt)?,
            },
            public_key: PublicKey::from_sec1(&self.key).map_err(corrupt)?,
            trust_id: TrustId(u64_of(self.trust_id)),
        })
    }
}

/// Writes an instance's members, replacing any it had.
fn write_members(c: &Connection, id: i64, record: &InstanceRecord) -> rusqlite::Result<()> {
    c.execute("DELETE FROM members WHERE instance = ?1", [id])?;
    let mut st = c.prepare_cached(
        "INSERT INTO members (instance, position, role, udi_pid, udi_serial, public_key, trust_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (pos, m) in record.members.iter().enumerate() {
        st.execute(params![
            id,
            i64::try_from(pos).unwrap_or(i64::MAX),
            role_text(m.role),
            m.udi.pid.as_str(),
            m.udi.serial.as_str(),
            &m.public_key.sec1()[..],
            i64_of(m.trust_id.0),
        ])?;
    }
    Ok(())
}

const LAST_TRUST_ID: &str = "last_trust_id";

impl ServiceStore for SqliteStore {
    fn add_smart_account(&mut self, name: &str) -> Result<SaId, Code> {
        let id = self.atomic(|c| {
            c.execute("INSERT INTO smart_accounts (name) VALUES (?1)", [name])?;
            Ok(c.last_insert_rowid())
        })?;
        id32(id).map(SaId)
    }

    fn smart_account_by_name(&self, name: &str) -> Result<Option<SaId>, Code> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM smart_accounts WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        id.map(|i| id32(i).map(SaId)).transpose()
    }

    fn smart_account_name(&self, id: SaId) -> Result<Option<Name>, Code> {
        let name: Option<String> = self
            .conn
            .query_row(
                "SELECT name FROM smart_accounts WHERE id = ?1",
                [i64::from(id.0)],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        name.map(|n| fixed(&n).map_err(|_| Code::RecordCorrupt))
            .transpose()
    }

    fn add_virtual_account(&mut self, sa: SaId, name: &str) -> Result<VaId, Code> {
        // A missing smart account breaks the foreign key: InvalidArgument, as MemStore says.
        let id = self.atomic(|c| {
            c.execute(
                "INSERT INTO virtual_accounts (smart_account, name) VALUES (?1, ?2)",
                params![i64::from(sa.0), name],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        id32(id).map(VaId)
    }

    fn virtual_account_by_name(&self, sa: SaId, name: &str) -> Result<Option<VaId>, Code> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM virtual_accounts WHERE smart_account = ?1 AND name = ?2",
                params![i64::from(sa.0), name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        id.map(|i| id32(i).map(VaId)).transpose()
    }

    fn virtual_account(&self, id: VaId) -> Result<Option<VirtualAccount>, Code> {
        let row: Option<(i64, String, Option<String>)> = self
            .conn
            .query_row(
                "SELECT smart_account, name, policy FROM virtual_accounts WHERE id = ?1",
                [i64::from(id.0)],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        let Some((sa, name, policy)) = row else {
            return Ok(None);
        };
        Ok(Some(VirtualAccount {
            smart_account: SaId(id32(sa).map_err(|_| Code::RecordCorrupt)?),
            name: fixed(&name).map_err(|_| Code::RecordCorrupt)?,
            policy: policy.as_deref().map(policy_of).transpose()?,
        }))
    }

    fn set_policy(&mut self, va: VaId, policy: Option<StoredPolicy>) -> Result<(), Code> {
        let json = policy.as_ref().map(policy_json).transpose()?;
        let n = self.atomic(|c| {
            Ok(c.execute(
                "UPDATE virtual_accounts SET policy = ?2 WHERE id = ?1",
                params![i64::from(va.0), json],
            )?)
        })?;
        if n == 0 {
            return Err(Code::InvalidArgument);
        }
        Ok(())
    }

    fn add_token(&mut self, token: &TokenRecord) -> Result<TokenId, Code> {
        let id = self.atomic(|c| {
            c.execute(
                "INSERT INTO tokens (text, virtual_account, max_uses, uses, expires_at,
                                     export_controlled)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.text.as_str(),
                    i64::from(token.virtual_account.0),
                    i64::from(token.max_uses),
                    i64::from(token.uses),
                    i64_of(token.expires_at.0),
                    token.export_controlled,
                ],
            )?;
            Ok(c.last_insert_rowid())
        })?;
        id32(id).map(TokenId)
    }

    fn token_by_text(&self, text: &str) -> Result<Option<(TokenId, TokenRecord)>, Code> {
        let row = self
            .conn
            .query_row(
                "SELECT id, text, virtual_account, max_uses, uses, expires_at, export_controlled
                 FROM tokens WHERE text = ?1",
                [text],
                |r| Ok((r.get::<_, i64>(0)?, token_cols(r, 1)?)),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        let Some((id, cols)) = row else {
            return Ok(None);
        };
        Ok(Some((
            TokenId(id32(id).map_err(|_| Code::RecordCorrupt)?),
            cols.record()?,
        )))
    }

    fn instance(&self, id: PiId) -> Result<Option<InstanceRecord>, Code> {
        type Cols = (i64, String, i64, bool, bool, i64, i64);
        let row: Option<Cols> = self
            .conn
            .query_row(
                "SELECT virtual_account, uuid, token, export_controlled, removed, trusted_at,
                        last_contact
                 FROM instances WHERE id = ?1",
                [i64::from(id.0)],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        let Some((va, uuid, token, export, removed, trusted_at, last_contact)) = row else {
            return Ok(None);
        };
        let members = (|| {
            let mut st = self.conn.prepare_cached(
                "SELECT role, udi_pid, udi_serial, public_key, trust_id
                 FROM members WHERE instance = ?1 ORDER BY position",
            )?;
            let it = st.query_map([i64::from(id.0)], |r| {
                Ok(MemberCols {
                    role: r.get(0)?,
                    pid: r.get(1)?,
                    serial: r.get(2)?,
                    key: r.get(3)?,
                    trust_id: r.get(4)?,
                })
            })?;
            it.collect::<Result<Vec<_>, _>>()
        })()
        .map_err(|e| self.fail(e))?;
        let corrupt = |_| Code::RecordCorrupt;
        let mut record = InstanceRecord {
            virtual_account: VaId(id32(va).map_err(corrupt)?),
            uuid: fixed(&uuid).map_err(corrupt)?,
            token: TokenId(id32(token).map_err(corrupt)?),
            members: heapless::Vec::new(),
            export_controlled: export,
            removed,
            trusted_at: Timestamp(u64_of(trusted_at)),
            last_contact: Timestamp(u64_of(last_contact)),
        };
        for m in members {
            record
                .members
                .push(m.record()?)
                .map_err(|_| Code::RecordCorrupt)?;
        }
        Ok(Some(record))
    }

    fn instance_by_udi(&self, udi: &Udi<'_>) -> Result<Option<PiId>, Code> {
        // A live instance first, then the most recent removed one.
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT i.id FROM members m JOIN instances i ON i.id = m.instance
                 WHERE m.udi_pid = ?1 AND m.udi_serial = ?2
                 ORDER BY i.removed, i.id DESC LIMIT 1",
                params![udi.udi_pid.as_str(), udi.udi_serial_number.as_str()],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.fail(e))?;
        id.map(|i| id32(i).map(PiId)).transpose()
    }

    fn last_trust_id(&self) -> Result<u64, Code> {
        Ok(self
            .meta(LAST_TRUST_ID)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok())
            .map_or(0, u64::from_be_bytes))
    }

    fn commit_trust(
        &mut self,
        token: TokenId,
        uses: u32,
        instance: Option<PiId>,
        record: &InstanceRecord,
    ) -> Result<PiId, Code> {
        let highest = record.members.iter().map(|m| m.trust_id.0).max();
        let last = self.last_trust_id()?.max(highest.unwrap_or(0));
        let id = self.atomic(|c| {
            let n = c.execute(
                "UPDATE tokens SET uses = ?2 WHERE id = ?1",
                params![i64::from(token.0), i64::from(uses)],
            )?;
            if n == 0 {
                return Err(Fail::Code(Code::InvalidArgument));
            }
            let id = match instance {
                Some(pi) => {
                    let n = c.execute(
                        "UPDATE instances SET virtual_account = ?2, uuid = ?3, token = ?4,
                                export_controlled = ?5, removed = ?6, trusted_at = ?7,
                                last_contact = ?8
                         WHERE id = ?1",
                        params![
                            i64::from(pi.0),
                            i64::from(record.virtual_account.0),
                            record.uuid.as_str(),
                            i64::from(record.token.0),
                            record.export_controlled,
                            record.removed,
                            i64_of(record.trusted_at.0),
                            i64_of(record.last_contact.0),
                        ],
                    )?;
                    if n == 0 {
                        return Err(Fail::Code(Code::InvalidArgument));
                    }
                    i64::from(pi.0)
                }
                None => {
                    c.execute(
                        "INSERT INTO instances (virtual_account, uuid, token, export_controlled,
                                                removed, trusted_at, last_contact)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            i64::from(record.virtual_account.0),
                            record.uuid.as_str(),
                            i64::from(record.token.0),
                            record.export_controlled,
                            record.removed,
                            i64_of(record.trusted_at.0),
                            i64_of(record.last_contact.0),
                        ],
                    )?;
                    c.last_insert_rowid()
                }
            };
            write_members(c, id, record)?;
            c.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![LAST_TRUST_ID, &last.to_be_bytes()[..]],
            )?;
            Ok(id)
        })?;
        id32(id).map(PiId)
    }

    fn set_removed(&mut self, id: PiId, removed: bool) -> Result<(), Code> {
        let n = self.atomic(|c| {
            Ok(c.execute(
                "UPDATE instances SET removed = ?2 WHERE id = ?1",
                params![i64::from(id.0), removed],
            )?)
        })?;
        if n == 0 {
            return Err(Code::InvalidArgument);
        }
        Ok(())
    }

    fn touch_instance(&mut self, id: PiId, now: Timestamp) -> Result<(), Code> {
        let n = self.atomic(|c| {
            Ok(c.execute(
                "UPDATE instances SET last_contact = ?2 WHERE id = ?1",
                params![i64::from(id.0), i64_of(now.0)],
            )?)
        })?;
        if n == 0 {
            return Err(Code::InvalidArgument);
        }
        Ok(())
    }

    fn report(&self, udi: &Udi<'_>, id: ReportId) -> Result<Option<ReportRecord>, Code> {
        let row = (|| {
            let mut st = self.conn.prepare_cached(
                "SELECT udi_pid, udi_serial, report_id, instance, payload_sha256, entitlement,
                        count, received_at
                 FROM reports WHERE udi_pid = ?1 AND udi_serial = ?2 AND report_id = ?3",
            )?;
            st.query_row(
                params![
                    udi.udi_pid.as_str(),
                    udi.udi_serial_number.as_str(),
                    i64_of(id.0)
                ],
                report_cols,
            )
            .optional()
        })()
        .map_err(|e| self.fail(e))?;
        row.map(ReportCols::record).transpose()
    }

    fn add_report(&mut self, report: &ReportRecord) -> Result<(), Code> {
        self.atomic(|c| {
            let mut st = c.prepare_cached(
                "INSERT INTO reports (udi_pid, udi_serial, report_id, instance, payload_sha256,
                                      entitlement, count, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            st.execute(params![
                report.udi.pid.as_str(),
                report.udi.serial.as_str(),
                i64_of(report.report_id.0),
                i64::from(report.instance.0),
                &report.payload_sha256[..],
                report.entitlement.as_str(),
                i64_of(report.count),
                i64_of(report.received_at.0),
            ])?;
            Ok(())
        })
    }

    fn report_count(&self, instance: PiId) -> Result<usize, Code> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM reports WHERE instance = ?1",
                [i64::from(instance.0)],
                |r| r.get(0),
            )
            .map_err(|e| self.fail(e))?;
        usize::try_from(n).map_err(|_| Code::RecordCorrupt)
    }

    fn add_poll(&mut self, poll: &PollRecord) -> Result<(), Code> {
        let (acked, rejected) = ack_columns(&poll.ack);
        self.atomic(|c| {
            c.execute(
                "INSERT INTO polls (poll_id, instance, acked, rejected, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    poll.poll_id.as_str(),
                    i64::from(poll.instance.0),
                    acked,
                    rejected,
                    i64_of(poll.created_at.0),
                ],
            )?;
            Ok(())
        })
    }

    fn take_poll(&mut self, instance: PiId, poll_id: &str) -> Result<Option<PollRecord>, Code> {
        let row: Option<(String, String, i64)> = self.atomic(|c| {
            let row = c
                .query_row(
                    "SELECT acked, rejected, created_at FROM polls
                     WHERE poll_id = ?1 AND instance = ?2",
                    params![poll_id, i64::from(instance.0)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if row.is_some() {
                c.execute("DELETE FROM polls WHERE poll_id = ?1", [poll_id])?;
            }
            Ok(row)
        })?;
        let Some((acked, rejected, created_at)) = row else {
            return Ok(None);
        };
        Ok(Some(PollRecord {
            poll_id: fixed(poll_id)?,
            instance,
            ack: ack_of(&acked, &rejected)?,
            created_at: Timestamp(u64_of(created_at)),
        }))
    }
}
