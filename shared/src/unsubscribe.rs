//! Unsubscribe tokens: the `{token}` of `GET/POST /u/{token}` and of the
//! `List-Unsubscribe` header (RFC 8058). A token names a (campaign id,
//! customer id) pair and carries an HMAC-SHA256 tag over both with
//! `security.unsubscribe_key`, so the gateway verifies it without a lookup
//! and nobody can unsubscribe someone else by editing the link.
//!
//! Format: `base64url(campaign_id) "." base64url(customer_id) "." hex(tag[..16])`.
//! Campaign ids and customer ids are bounded by their own rules, so a token
//! stays well under the 2,000 characters mail clients keep in a URL.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag kept in a token (128 bits).
const TAG_BYTES: usize = 16;
/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_CHARS: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed unsubscribe token")]
    Malformed,
    #[error("unsubscribe token signature does not match")]
    BadSignature,
}

/// Makes and checks unsubscribe tokens with one key.
#[derive(Clone)]
pub struct UnsubscribeTokens {
    keyed: HmacSha256,
}

impl std::fmt::Debug for UnsubscribeTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnsubscribeTokens(..)")
    }
}

impl UnsubscribeTokens {
    pub fn new(key: impl AsRef<[u8]>) -> Self {
        Self {
            keyed: <HmacSha256 as Mac>::new_from_slice(key.as_ref())
                .unwrap_or_else(|_| unreachable!("hmac takes any key length")),
        }
    }

    fn tag(&self, campaign_id: &str, customer_id: &str) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        // Length-prefixed, so ("ab", "c") and ("a", "bc") never share a tag.
        mac.update(&(campaign_id.len() as u64).to_be_bytes());
        mac.update(campaign_id.as_bytes());
        mac.update(customer_id.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The token for one recipient of one campaign.
    pub fn token(&self, campaign_id: &str, customer_id: &str) -> String {
        let tag = self.tag(campaign_id, customer_id);
        format!(
            "{}.{}.{}",
            b64url(campaign_id.as_bytes()),
            b64url(customer_id.as_bytes()),
            hex::encode(&tag[..TAG_BYTES])
        )
    }

    /// The (campaign id, customer id) a genuine token names.
    pub fn verify(&self, token: &str) -> Result<(String, String), TokenError> {
        if token.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(campaign), Some(customer), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let campaign = unb64url(campaign).ok_or(TokenError::Malformed)?;
        let customer = unb64url(customer).ok_or(TokenError::Malformed)?;
        let tag = hex::decode(tag).map_err(|_| TokenError::Malformed)?;
        if tag.len() != TAG_BYTES || campaign.is_empty() || customer.is_empty() {
            return Err(TokenError::Malformed);
        }
        let expected = self.tag(&campaign, &customer);
        // Constant time: the comparison must not say how many bytes matched.
        let diff = expected[..TAG_BYTES]
            .iter()
            .zip(&tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(TokenError::BadSignature);
        }
        Ok((campaign, customer))
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url (RFC 4648 §5).
fn b64url(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        let chars = chunk.len() + 1;
        for i in 0..chars {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn unb64url(text: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Left-over bits must be zero padding (a canonical encoding), at most 4 of them.
    if bits >= 6 || acc != 0 {
        return None;
    }
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_verifies_to_its_pair_and_nothing_else() {
        let tokens = UnsubscribeTokens::new(b"k1");
        for (campaign, customer) in [
            ("spring-2026", "C00042"),
            ("a", "b"),
            ("ab", "c"),
            ("é", "ü✓"),
        ] {
            let token = tokens.token(campaign, customer);
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            );
            assert_eq!(
                tokens.verify(&token),
                Ok((campaign.to_string(), customer.to_string()))
            );
        }
        assert_ne!(tokens.token("ab", "c"), tokens.token("a", "bc"));
    }

    #[test]
    fn another_key_an_edited_pair_or_junk_is_refused() {
        let tokens = UnsubscribeTokens::new(b"k1");
        let token = tokens.token("spring-2026", "C00042");
        assert_eq!(
            UnsubscribeTokens::new(b"k2").verify(&token),
            Err(TokenError::BadSignature)
        );
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], b64url(b"C00043"), parts[2]);
        assert_eq!(tokens.verify(&forged), Err(TokenError::BadSignature));
        for junk in ["", "a.b", "a.b.c.d", "!!.b.00", &"x".repeat(2000)] {
            assert_eq!(tokens.verify(junk), Err(TokenError::Malformed), "{junk}");
        }
        // A non-canonical encoding of the same bytes is not accepted either.
        let odd = format!("{}B.{}.{}", parts[0], parts[1], parts[2]);
        assert!(tokens.verify(&odd).is_err());
    }
}
