//! Message ids without the allocations of the general `derive_id`.
//!
//! `cpo_shared::envelope::message_id` is the definition; this computes the
//! same string (a test holds them equal) with the campaign's part of the hash
//! absorbed once per batch and the hex written straight into one `String`.

use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The message ids of one campaign.
#[derive(Clone)]
pub struct MessageIds {
    campaign_state: Sha256,
}

impl MessageIds {
    pub fn new(campaign_id: &str) -> Self {
        let mut campaign_state = Sha256::new();
        for part in ["message", campaign_id] {
            campaign_state.update((part.len() as u64).to_le_bytes());
            campaign_state.update(part.as_bytes());
        }
        Self { campaign_state }
    }

    /// `msg-` and the hex of the first 16 bytes of the hash, as `message_id` gives.
    pub fn id(&self, customer_id: &str) -> String {
        let mut state = self.campaign_state.clone();
        state.update((customer_id.len() as u64).to_le_bytes());
        state.update(customer_id.as_bytes());
        let digest = state.finalize();
        let mut id = String::with_capacity(36);
        id.push_str("msg-");
        for byte in &digest[..16] {
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        id
    }
}

#[cfg(test)]
mod tests {
    use cpo_shared::envelope::message_id;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn ids_equal_the_shared_definition(campaign in ".{0,40}", customer in ".{0,40}") {
            prop_assert_eq!(MessageIds::new(&campaign).id(&customer), message_id(&campaign, &customer));
        }
    }
}
