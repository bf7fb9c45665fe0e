//! Batching for the providers that take many recipients per call (SendGrid
//! personalizations, Mailgun recipient-variables): which emails can share a
//! call, and which fields of a call are the same for all of them and which
//! become per-recipient values.

use std::collections::{HashMap, HashSet};

use crate::sink::OutgoingEmail;

/// Indices into `emails`, one list per provider call: emails with the same
/// sender, Reply-To and header names, at most `max` per call, in order.
/// `unique_addresses`: an address appears at most once per call (Mailgun
/// keys recipient-variables by address).
pub(crate) fn calls(
    emails: &[OutgoingEmail],
    max: usize,
    unique_addresses: bool,
) -> Vec<Vec<usize>> {
    let max = max.max(1);
    let mut calls: Vec<Vec<usize>> = Vec::new();
    let mut addresses: Vec<HashSet<String>> = Vec::new();
    // Open calls of each group, by index into `calls`.
    let mut open: HashMap<GroupKey<'_>, Vec<usize>> = HashMap::new();
    for (index, email) in emails.iter().enumerate() {
        let address = email.to.address.to_ascii_lowercase();
        let candidates = open.entry(GroupKey::of(email)).or_default();
        let fits = candidates.iter().copied().find(|&call| {
            calls[call].len() < max && !(unique_addresses && addresses[call].contains(&address))
        });
        let call = match fits {
            Some(call) => call,
            None => {
                calls.push(Vec::new());
                addresses.push(HashSet::new());
                candidates.push(calls.len() - 1);
                calls.len() - 1
            }
        };
        calls[call].push(index);
        addresses[call].insert(address);
        candidates.retain(|&c| calls[c].len() < max);
    }
    calls
}

#[derive(PartialEq, Eq, Hash)]
struct GroupKey<'a> {
    from: (&'a Option<String>, &'a str),
    reply_to: Option<(&'a Option<String>, &'a str)>,
    header_names: Vec<&'a str>,
}

impl<'a> GroupKey<'a> {
    fn of(email: &'a OutgoingEmail) -> Self {
        Self {
            from: (&email.from.name, &email.from.address),
            reply_to: email
                .reply_to
                .as_ref()
                .map(|r| (&r.name, r.address.as_str())),
            header_names: email.headers.iter().map(|(n, _)| n.as_str()).collect(),
        }
    }
}

/// `Some(value)` when every email of the call has the same value, else
/// `None` (the field becomes a per-recipient value).
pub(crate) fn shared<'a>(mut values: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let first = values.next()?;
    values.all(|v| v == first).then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Mailbox;

    fn email(i: usize, to: &str, from: &str) -> OutgoingEmail {
        OutgoingEmail {
            message_id: format!("msg-{i}"),
            campaign_id: "camp".into(),
            customer_id: format!("C{i}"),
            from: Mailbox {
                name: None,
                address: from.into(),
            },
            reply_to: None,
            to: Mailbox {
                name: None,
                address: to.into(),
            },
            subject: "s".into(),
            text: "t".into(),
            html: "h".into(),
            rfc_message_id: format!("msg-{i}@b.example"),
            headers: vec![("List-Unsubscribe".into(), format!("<https://u/{i}>"))],
        }
    }

    #[test]
    fn calls_split_by_size_sender_and_repeated_address() {
        let emails: Vec<_> = (0..5)
            .map(|i| email(i, &format!("c{i}@x.example"), "a@b.example"))
            .collect();
        assert_eq!(
            calls(&emails, 2, false),
            vec![vec![0, 1], vec![2, 3], vec![4]]
        );
        let mut mixed = emails.clone();
        mixed[1].from.address = "other@b.example".into();
        assert_eq!(calls(&mixed, 10, false), vec![vec![0, 2, 3, 4], vec![1]]);
        let mut repeated = emails.clone();
        repeated[2].to.address = "C0@x.example".into();
        assert_eq!(calls(&repeated, 10, true), vec![vec![0, 1, 3, 4], vec![2]]);
        assert_eq!(calls(&repeated, 10, false), vec![vec![0, 1, 2, 3, 4]]);
    }

    #[test]
    fn shared_values_only_when_all_agree() {
        assert_eq!(shared(["a", "a"].into_iter()), Some("a"));
        assert_eq!(shared(["a", "b"].into_iter()), None);
        assert_eq!(shared(std::iter::empty()), None);
    }
}
