//! Link targets: the one rule for every link a message may carry, checked at
//! enqueue (`cpo enqueue`, `cpo run`) and again by delivery right before a send.
//!
//! A link is `https://` with a host on the allowed domains (a listed domain or
//! one of its subdomains), no user info (`https://good.example@evil.example`
//! reads as good.example to a person and goes to evil.example), and only the
//! printable ASCII an attribute, a header or a template language cannot break
//! out of. `javascript:`, `data:`, plain `http:` and off-list hosts are refused.
//! When no domains are configured (`delivery.allowed_link_domains`), the
//! allowed domain is the host of the campaign's own `call_to_action_url`.

use crate::model::CampaignRequest;

/// Longest link accepted, in bytes (what mail clients and ESPs handle safely).
pub const MAX_LINK_BYTES: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("`{scheme}:` links are not allowed (https only)")]
    Scheme { scheme: String },
    #[error("the link is not an absolute https URL")]
    NotUrl,
    #[error("the link carries user info before its host, which hides the real destination")]
    UserInfo,
    #[error("the link contains characters that are not plain printable ASCII or are reserved")]
    Characters,
    #[error("the link is longer than {MAX_LINK_BYTES} bytes")]
    TooLong,
    #[error("the link's host `{host}` is not on the allowed domains ({allowed})")]
    OffList { host: String, allowed: String },
}

/// The lowercase host of an `https://` link, after the character, scheme and
/// user-info checks.
pub fn link_host(url: &str) -> Result<String, LinkError> {
    if url.len() > MAX_LINK_BYTES {
        return Err(LinkError::TooLong);
    }
    let scheme = url
        .split_once(':')
        .map(|(scheme, _)| scheme.trim().to_ascii_lowercase());
    match scheme.as_deref() {
        Some("https") => {}
        Some(scheme) if !scheme.is_empty() && !scheme.contains('/') => {
            return Err(LinkError::Scheme {
                scheme: scheme.chars().take(32).collect(),
            });
        }
        _ => return Err(LinkError::NotUrl),
    }
    let chars_ok = url.bytes().all(|b| {
        b.is_ascii_graphic()
            && !matches!(b, b'{' | b'}' | b'<' | b'>' | b'"' | b'\'' | b'\\' | b'`')
    });
    if !chars_ok {
        return Err(LinkError::Characters);
    }
    let Some(rest) = url.strip_prefix("https://") else {
        // `https:` with another case or without `//`: refuse rather than guess.
        return Err(LinkError::NotUrl);
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(LinkError::UserInfo);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !host.contains('.') || !host.split('.').all(label_ok) {
        return Err(LinkError::NotUrl);
    }
    Ok(host)
}

/// Whether `host` is one of `allowed` or a subdomain of one.
fn on_list(host: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|domain| {
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        !domain.is_empty()
            && (host == domain
                || host
                    .strip_suffix(domain.as_str())
                    .is_some_and(|head| head.ends_with('.')))
    })
}

/// Check one link against the allowed domains; returns the link unchanged.
pub fn check_link<'a>(url: &'a str, allowed: &[String]) -> Result<&'a str, LinkError> {
    let host = link_host(url)?;
    if on_list(&host, allowed) {
        Ok(url)
    } else {
        Err(LinkError::OffList {
            host,
            allowed: if allowed.is_empty() {
                "none".to_string()
            } else {
                allowed.join(", ")
            },
        })
    }
}

/// The domains links may point to: the configured ones, or else the host of
/// the campaign's call-to-action link (so a campaign alone cannot widen a
/// configured list, and an unconfigured fleet still refuses unsafe schemes).
pub fn allowed_domains(configured: &[String], call_to_action_url: Option<&str>) -> Vec<String> {
    if !configured.is_empty() {
        return configured.to_vec();
    }
    call_to_action_url
        .and_then(|url| link_host(url).ok())
        .into_iter()
        .collect()
}

/// Every link-like token of a text (`https://`, `http://`, `javascript:`,
/// `data:` at a word start, any case), up to the next space or closing
/// delimiter, for `check_link`: generated copy may carry a link of its own.
pub fn links_in(text: &str) -> Vec<&str> {
    const SCHEMES: [&str; 4] = ["https://", "http://", "javascript:", "data:"];
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut at = 0;
    while at < lower.len() {
        let next = SCHEMES
            .iter()
            .filter_map(|scheme| lower[at..].find(scheme).map(|i| (at + i, scheme.len())))
            .min();
        let Some((start, scheme_len)) = next else {
            break;
        };
        let word_start = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | ']' | '>' | '"' | '\''))
            .map_or(text.len(), |i| start + i);
        // `data:` followed by a space is prose ("your data: ..."), not a link.
        if word_start && end > start + scheme_len {
            found.push(text[start..end].trim_end_matches(['.', ',', ';', ':', '!', '?']));
        }
        at = end.max(start + scheme_len);
    }
    found
}

/// The enqueue check of a campaign's links, with an error that names the field.
pub fn check_campaign_links(
    campaign: &CampaignRequest,
    configured: &[String],
) -> Result<(), String> {
    let Some(url) = campaign.call_to_action_url.as_deref() else {
        return Ok(());
    };
    let allowed = allowed_domains(configured, Some(url));
    check_link(url, &allowed).map(drop).map_err(|e| {
        format!(
            "campaign `{}`: call_to_action_url is refused: {e}",
            campaign.campaign_id
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(domains: &[&str]) -> Vec<String> {
        domains.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn only_https_links_on_the_list_pass() {
        let allowed = list(&["example.com"]);
        for good in [
            "https://example.com/spring",
            "https://shop.example.com:8443/a?b=c#d",
            "https://EXAMPLE.com.",
        ] {
            assert_eq!(check_link(good, &allowed), Ok(good), "{good}");
        }
        let refused = |url: &str| check_link(url, &allowed).unwrap_err();
        assert!(
            matches!(refused("javascript:alert(1)"), LinkError::Scheme { scheme } if scheme == "javascript")
        );
        assert!(matches!(
            refused("JavaScript:alert(1)"),
            LinkError::Scheme { .. }
        ));
        assert!(
            matches!(refused("data:text/html;base64,PHNjcmlwdD4="), LinkError::Scheme { scheme } if scheme == "data")
        );
        assert!(matches!(
            refused("http://example.com/"),
            LinkError::Scheme { .. }
        ));
        assert!(
            matches!(refused("https://evil.example/phish"), LinkError::OffList { host, .. } if host == "evil.example")
        );
        assert!(matches!(
            refused("https://notexample.com/"),
            LinkError::OffList { .. }
        ));
        assert!(matches!(
            refused("https://example.com.evil.example/"),
            LinkError::OffList { .. }
        ));
        assert_eq!(
            refused("https://example.com@evil.example/"),
            LinkError::UserInfo
        );
        assert_eq!(
            refused("https://example.com/\"><script>"),
            LinkError::Characters
        );
        for bad in [
            "https://exa mple.com/",
            "https://example.com/\r\nX: y",
            "https://example.com/{{first_name}}",
            "https://example.com/\"onmouseover",
            "https://exämple.com",
        ] {
            assert_eq!(refused(bad), LinkError::Characters, "{bad:?}");
        }
        assert_eq!(refused("//example.com/"), LinkError::NotUrl);
        assert_eq!(refused("https:example.com"), LinkError::NotUrl);
        assert_eq!(refused("https://localhost/"), LinkError::NotUrl);
        assert_eq!(
            refused(&format!(
                "https://example.com/{}",
                "a".repeat(MAX_LINK_BYTES)
            )),
            LinkError::TooLong
        );
        // nothing is allowed when no domain is known
        assert!(matches!(
            check_link("https://example.com/", &[]),
            Err(LinkError::OffList { .. })
        ));
    }

    #[test]
    fn links_in_copy_are_found_and_prose_is_not() {
        let text = "Hi! See https://example.com/a, or (javascript:alert(1)) and \
                    DATA:text/html,x. Your data: safe. metadata:x http://x.example/b.";
        assert_eq!(
            links_in(text),
            [
                "https://example.com/a",
                "javascript:alert(1",
                "DATA:text/html,x",
                "http://x.example/b"
            ]
        );
        assert!(links_in("Hi {{first_name}}, {{cta_url}}").is_empty());
    }

    #[test]
    fn the_default_list_is_the_call_to_action_host() {
        assert_eq!(
            allowed_domains(&[], Some("https://Shop.Example.com/x")),
            list(&["shop.example.com"])
        );
        assert_eq!(allowed_domains(&[], Some("javascript:alert(1)")), list(&[]));
        assert_eq!(
            allowed_domains(&list(&["brand.example"]), Some("https://other.example/")),
            list(&["brand.example"])
        );
    }
}
