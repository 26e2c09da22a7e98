//! The shared approval store: Redis or Valkey (`[shared] redis_url`), so that a callback landing
//! on one instance completes a login waiting on another, exactly once.
//!
//! Keys (every one has a TTL; nothing secret is stored — the callback's OTP is validated by the
//! instance that receives it, and only the verdict travels):
//!
//! | key | value | TTL |
//! |---|---|---|
//! | `sxs:approval:{id}` | the [`Pending`] entry, JSON | until its expiry, + 1 s |
//! | `sxs:approval:{id}:claimed` | `1`: a callback took it | the entry's remaining TTL |
//! | `sxs:approval:{id}:result` | the [`Approval`], JSON | [`RESULT_TTL`] |
//! | `sxs:approvals` | sorted set of every waiting id, by expiry (`push.max_pending`) | the longest entry's |
//! | `sxs:approvals:user:{user}` | the same, per user (`push.max_pending_per_user`) | the longest entry's |
//! | `sxs:state:{nonce}` | `1`: a challenge State redeemed (single use) | until the State expires, + 1 s |
//! | `sxs:passed:{nonce}` | a password-then-OTP login's groups and upstream attributes, JSON (taken by the OTP round) | until the State expires, + 1 s |
//!
//! Creating (limits, entry, sets) and claiming (exists and not yet claimed → claimed) are Lua
//! scripts, so two instances never both pass a limit or both claim one entry. Completion sets the
//! result and publishes the id on the channel [`DONE_CHANNEL`]; one subscription per process
//! wakes the local waiter, which then takes the result. A waiter is registered for wake-ups
//! *before* it looks for a result, so a completion between the two is never lost; when the
//! subscription breaks (and again once it is back) every waiter looks again, so a completion
//! published meanwhile is not lost either, and a Redis that is gone is noticed at once (the
//! login is refused) instead of at the end of the push timeout.
//!
//! Every command is bounded by [`TIMEOUT`]; a failure is an error for the caller, which refuses
//! (fail closed). One Redis or Valkey server (or a primary behind a virtual address): the scripts
//! touch several keys, which Redis Cluster would need in one hash slot.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use common::Secret;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;
use tokio::sync::Notify;

use super::{Approval, ClaimError, CreateError, Pending, StoreError};

/// The channel on which completions are announced (the payload is the id).
pub const DONE_CHANNEL: &str = "sxs:approval:done";
/// How long a completion's result is kept for its waiter (which takes it at once).
pub const RESULT_TTL: u64 = 60;
/// The bound on connecting to Redis and on every command.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Waits between attempts to restore the completion subscription.
const RESUBSCRIBE_DELAY: Duration = Duration::from_millis(500);

fn entry_key(id: &str) -> String {
    format!("sxs:approval:{id}")
}
fn claimed_key(id: &str) -> String {
    format!("sxs:approval:{id}:claimed")
}
fn result_key(id: &str) -> String {
    format!("sxs:approval:{id}:result")
}
const ALL_KEY: &str = "sxs:approvals";
fn user_key(user: &str) -> String {
    format!("sxs:approvals:user:{user}")
}
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
fn state_key(nonce: &[u8]) -> String {
    format!("sxs:state:{}", hex(nonce))
}
fn passed_key(nonce: &[u8]) -> String {
    format!("sxs:passed:{}", hex(nonce))
}

/// KEYS: entry, user set, all set. ARGV: id, entry JSON, now, expires_at, ttl, per-user limit,
/// total limit. Returns 0 (created), 1 (user limit), 2 (total limit), 3 (the id is taken).
const CREATE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 3 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[3])
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[6]) then return 1 end
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[7]) then return 2 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[5])
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], ARGV[4], ARGV[1])
  if redis.call('TTL', KEYS[i]) < tonumber(ARGV[5]) then redis.call('EXPIRE', KEYS[i], ARGV[5]) end
end
return 0
";

/// KEYS: entry, claimed. Returns {'unknown'}, {'claimed'} or {'ok', entry JSON}.
const CLAIM: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return {'unknown'} end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 1 then ttl = 1 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ttl) then return {'claimed'} end
return {'ok', v}
";

/// KEYS: key. Reads and deletes it in one step (GETDEL without needing Redis 6.2).
const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if v then redis.call('DEL', KEYS[1]) end
return v
";

/// Pending approvals shared through Redis or Valkey.
pub struct RedisStore {
    conn: ConnectionManager,
    /// The ids waiting in this process, each with what wakes its waiter.
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    max_per_user: u32,
    max_total: usize,
    /// The URL without its password, for logs.
    url: String,
    create: Script,
    claim: Script,
    take: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.url)
            .field("waiting_here", &self.len())
            .finish_non_exhaustive()
    }
}

fn backend(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("Redis {what}: {e}"))
}

async fn bounded<T>(
    what: &str,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(backend(what, e)),
        Err(_) => Err(backend(what, format!("no answer within {TIMEOUT:?}"))),
    }
}

impl RedisStore {
    /// Connects to `url` (checked with PING), subscribes to completions, and starts the task
    /// that keeps the subscription. Fails, saying why, when Redis cannot be reached within
    /// [`TIMEOUT`]: the daemon does not start without the store it was told to share.
    pub async fn connect(
        url: &Secret,
        max_per_user: u32,
        max_total: usize,
    ) -> Result<Arc<Self>, StoreError> {
        let raw = url
            .expose_str()
            .ok_or_else(|| StoreError("shared.redis_url is not UTF-8".into()))?;
        let shown = common::config::redacted_url(raw);
        let client = redis::Client::open(raw).map_err(|e| backend(&shown, e))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = bounded(
            &format!("{shown}: connect"),
            client.get_connection_manager_with_config(config),
        )
        .await?;
        let pong: String = bounded(
            &format!("{shown}: PING"),
            redis::cmd("PING").query_async(&mut conn),
        )
        .await?;
        if pong != "PONG" {
            return Err(backend(
                &format!("{shown}: PING"),
                format!("answered {pong:?}"),
            ));
        }
        let pubsub = subscribe(&client, &shown).await?;
        let store = Arc::new(Self {
            conn,
            waiters: Mutex::new(HashMap::new()),
            max_per_user,
            max_total,
            url: shown,
            create: Script::new(CREATE),
            claim: Script::new(CLAIM),
            take: Script::new(TAKE),
        });
        tokio::spawn(keep_subscribed(Arc::downgrade(&store), client, pubsub));
        Ok(store)
    }

    /// The URL, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn waiters(&self) -> MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        match self.waiters.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Wakes every waiter of this process to look for its result again.
    fn wake_all(&self) {
        for n in self.waiters().values() {
            n.notify_one();
        }
    }

    pub async fn create(
        self: &Arc<Self>,
        pending: Pending,
        now: u64,
    ) -> Result<RedisWaiter, CreateError> {
        let json = serde_json::to_string(&pending)
            .map_err(|e| CreateError::Backend(format!("cannot encode the entry: {e}")))?;
        let ttl = pending
            .expires_at
            .saturating_sub(now)
            .max(1)
            .saturating_add(1);
        let id = pending.id.clone();
        let user = pending.identity.user.clone();
        // Registered before anything can complete it: no wake-up is lost.
        let notify = Arc::new(Notify::new());
        {
            let mut waiters = self.waiters();
            if waiters.contains_key(&id) {
                return Err(CreateError::Exists);
            }
            waiters.insert(id.clone(), notify.clone());
        }
        let mut conn = self.conn.clone();
        let created: Result<i64, CreateError> = bounded(
            "create",
            self.create
                .key(entry_key(&id))
                .key(user_key(&user))
                .key(ALL_KEY)
                .arg(&id)
                .arg(json)
                .arg(now)
                .arg(pending.expires_at)
                .arg(ttl)
                .arg(self.max_per_user)
                .arg(self.max_total)
                .invoke_async(&mut conn),
        )
        .await
        .map_err(|e| CreateError::Backend(e.0));
        if created != Ok(0) {
            // Not created (or not known to be): only the local registration goes; an entry of
            // the same id belongs to another login, and one half-made expires on its own.
            self.waiters().remove(&id);
        }
        match created? {
            0 => Ok(RedisWaiter {
                id,
                user,
                notify,
                store: self.clone(),
                done: false,
            }),
            1 => Err(CreateError::UserLimit {
                user,
                limit: self.max_per_user,
            }),
            2 => Err(CreateError::Full {
                limit: self.max_total,
            }),
            3 => Err(CreateError::Exists),
            other => Err(CreateError::Backend(format!(
                "create script answered {other}"
            ))),
        }
    }

    pub async fn claim(&self, id: &str, now: u64) -> Result<Pending, ClaimError> {
        let mut conn = self.conn.clone();
        let answer: Vec<String> = bounded(
            "claim",
            self.claim
                .key(entry_key(id))
                .key(claimed_key(id))
                .invoke_async(&mut conn),
        )
        .await
        .map_err(|e| ClaimError::Backend(e.0))?;
        match answer.as_slice() {
            [s] if s == "unknown" => Err(ClaimError::Unknown),
            [s] if s == "claimed" => Err(ClaimError::AlreadyCompleted),
            [s, json] if s == "ok" => {
                let pending: Pending = serde_json::from_str(json)
                    .map_err(|e| ClaimError::Backend(format!("entry {id} cannot be read: {e}")))?;
                if pending.expires_at < now {
                    return Err(ClaimError::Expired);
                }
                Ok(pending)
            }
            _ => Err(ClaimError::Backend(
                "claim script answered something unexpected".into(),
            )),
        }
    }

    /// Stores the result and announces it; the waiting instance takes it.
    pub async fn finish(&self, id: &str, approval: &Approval) -> Result<(), StoreError> {
        let json = serde_json::to_string(approval)
            .map_err(|e| StoreError(format!("cannot encode the result: {e}")))?;
        let mut conn = self.conn.clone();
        bounded::<()>(
            "finish",
            redis::pipe()
                .atomic()
                .set_ex(result_key(id), json, RESULT_TTL)
                .ignore()
                .publish(DONE_CHANNEL, id)
                .ignore()
                .query_async(&mut conn),
        )
        .await
    }

    /// Takes the result of `id`, if there is one.
    async fn take_result(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        let mut conn = self.conn.clone();
        let json: Option<String> = bounded(
            "take result",
            redis::cmd("GETDEL")
                .arg(result_key(id))
                .query_async(&mut conn),
        )
        .await?;
        json.map(|j| {
            serde_json::from_str(&j)
                .map_err(|e| StoreError(format!("result of {id} cannot be read: {e}")))
        })
        .transpose()
    }

    /// Forgets `id` here and in Redis (a late callback then finds nothing).
    async fn forget(&self, id: &str, user: &str) {
        self.waiters().remove(id);
        let mut conn = self.conn.clone();
        let r = bounded::<()>(
            "forget",
            redis::pipe()
                .del(&[entry_key(id), claimed_key(id), result_key(id)])
                .ignore()
                .zrem(user_key(user), id)
                .ignore()
                .zrem(ALL_KEY, id)
                .ignore()
                .query_async(&mut conn),
        )
        .await;
        if let Err(e) = r {
            // The keys expire on their own; nothing can complete the entry here any more.
            tracing::debug!(error = %e, "approval entry not removed from Redis (it expires)");
        }
    }

    /// Marks a challenge State's nonce redeemed until `expires_at`: `Ok(true)` the first time
    /// on any instance, `Ok(false)` afterwards (a replay).
    pub async fn redeem_state(
        &self,
        nonce: &[u8],
        expires_at: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let ttl = expires_at.saturating_sub(now).saturating_add(1);
        let mut conn = self.conn.clone();
        let set: Option<String> = bounded(
            "redeem State",
            redis::cmd("SET")
                .arg(state_key(nonce))
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl)
                .query_async(&mut conn),
        )
        .await?;
        Ok(set.is_some())
    }

    /// Keeps what a password-then-OTP login's first round found (`value`: groups and upstream
    /// attributes, JSON; nothing secret) under its State's nonce until `expires_at`, so that
    /// the OTP may come back to any instance.
    pub async fn put_passed(
        &self,
        nonce: &[u8],
        expires_at: u64,
        now: u64,
        value: &str,
    ) -> Result<(), StoreError> {
        let ttl = expires_at.saturating_sub(now).saturating_add(1);
        let mut conn = self.conn.clone();
        bounded(
            "keep first-factor result",
            redis::cmd("SET")
                .arg(passed_key(nonce))
                .arg(value)
                .arg("EX")
                .arg(ttl)
                .query_async::<()>(&mut conn),
        )
        .await
    }

    /// Takes (reads and deletes, atomically, in a script: any Redis with Lua, Valkey) what
    /// [`Self::put_passed`] kept; `None` when nothing is (expired, or taken already).
    pub async fn take_passed(&self, nonce: &[u8]) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn.clone();
        bounded(
            "take first-factor result",
            self.take.key(passed_key(nonce)).invoke_async(&mut conn),
        )
        .await
    }

    /// Logins waiting in this process.
    pub fn len(&self) -> usize {
        self.waiters().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

async fn subscribe(client: &redis::Client, shown: &str) -> Result<redis::aio::PubSub, StoreError> {
    let mut pubsub = bounded(
        &format!("{shown}: connect (subscription)"),
        client.get_async_pubsub(),
    )
    .await?;
    bounded(
        &format!("{shown}: SUBSCRIBE {DONE_CHANNEL}"),
        pubsub.subscribe(DONE_CHANNEL),
    )
    .await?;
    Ok(pubsub)
}

/// Delivers completions to this process's waiters for as long as the store lives; restores the
/// subscription when it breaks.
async fn keep_subscribed(
    store: Weak<RedisStore>,
    client: redis::Client,
    pubsub: redis::aio::PubSub,
) {
    let mut pubsub = Some(pubsub);
    loop {
        if let Some(p) = pubsub.take() {
            let mut messages = p.into_on_message();
            while let Some(msg) = messages.next().await {
                let Some(store) = store.upgrade() else { return };
                if let Ok(id) = msg.get_payload::<String>() {
                    if let Some(n) = store.waiters().get(&id) {
                        n.notify_one();
                    }
                }
            }
            let Some(store) = store.upgrade() else { return };
            tracing::error!(url = store.url(), "Redis completion subscription lost; waiting logins check the store now and are refused if it is unreachable");
            store.wake_all();
        }
        tokio::time::sleep(RESUBSCRIBE_DELAY).await;
        let Some(store) = store.upgrade() else { return };
        match subscribe(&client, store.url()).await {
            Ok(p) => {
                tracing::info!(url = store.url(), "Redis completion subscription restored");
                // Anything published while unsubscribed: every waiter looks again.
                store.wake_all();
                pubsub = Some(p);
            }
            Err(e) => tracing::warn!(error = %e, "Redis completion subscription not restored yet"),
        }
    }
}

/// Waits for one entry of a [`RedisStore`], woken by the completion subscription.
#[derive(Debug)]
pub struct RedisWaiter {
    id: String,
    user: String,
    notify: Arc<Notify>,
    store: Arc<RedisStore>,
    done: bool,
}

impl RedisWaiter {
    pub async fn wait(mut self, timeout: Duration) -> Result<Option<Approval>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let waited = tokio::time::timeout_at(deadline, async {
            loop {
                // Registered at creation, so a completion announced before this look is kept
                // as a stored wake-up and seen by the next one.
                if let Some(a) = self.store.take_result(&self.id).await? {
                    return Ok(Some(a));
                }
                self.notify.notified().await;
            }
        })
        .await
        .unwrap_or(Ok(None));
        self.done = true;
        self.store.forget(&self.id, &self.user).await;
        waited
    }
}

impl Drop for RedisWaiter {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.store.waiters().remove(&self.id);
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let (store, id, user) = (self.store.clone(), self.id.clone(), self.user.clone());
            rt.spawn(async move { store.forget(&id, &user).await });
        }
    }
}
