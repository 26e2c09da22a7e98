//! A challenge State's single use: remembered in this process ([`UsedStates`]), or, with
//! `[shared] redis_url`, in Redis (`SET sxs:state:{nonce} 1 NX EX ttl`) so that a State is
//! redeemed once across every instance. The handler calls [`Redemptions::redeem`] either way.

use std::sync::{Arc, Mutex};

use crate::approval::RedisStore;
use crate::state::{Nonce, StateError, StateSigner, UsedStates};

/// Where redeemed States are recorded.
#[derive(Debug, Clone)]
pub enum Redemptions {
    /// This process only; kept across reloads by the server.
    Local(Arc<Mutex<UsedStates>>),
    /// Shared by every instance using the same Redis.
    Shared(Arc<RedisStore>),
}

impl Redemptions {
    /// Verifies `state` (signature, user, client, expiry) and marks it used: succeeds once.
    pub async fn redeem(
        &self,
        signer: &StateSigner,
        state: &[u8],
        user: &[u8],
        client: &[u8],
        now_unix: u64,
    ) -> Result<Nonce, StateError> {
        match self {
            Redemptions::Local(used) => {
                let mut used = used
                    .lock()
                    .map_err(|_| StateError::Store("replay cache lock poisoned".into()))?;
                signer.redeem(&mut used, state, user, client, now_unix)
            }
            Redemptions::Shared(store) => {
                let nonce = signer.verify(state, user, client, now_unix)?;
                match store
                    .redeem_state(nonce.value(), nonce.expires_at(), now_unix)
                    .await
                {
                    Ok(true) => Ok(nonce),
                    Ok(false) => Err(StateError::Replayed),
                    Err(e) => Err(StateError::Store(e.0)),
                }
            }
        }
    }
}
