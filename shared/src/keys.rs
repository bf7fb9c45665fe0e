//! Unknown keys are errors, and the error names the closest known key.
//!
//! Campaign and config types reject unknown keys with serde's
//! `deny_unknown_fields`; a misspelt `toness:` silently running the default
//! tones is worse than a refusal. Serde's own message lists every field the
//! type knows ("unknown field `toness`, expected one of `campaign_id`, ...");
//! `explain` turns it into one that says what was probably meant. A test holds
//! the parsing to serde's real output, so a change of wording fails there
//! rather than quietly losing the hint.

/// The known name closest to `key`, if one is close enough to be a likely typo:
/// a case-insensitive edit distance (a swap of neighbours counting once) of at
/// most a third of the longer name
/// (and at least 1), or `key` being a prefix or extension of it.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let key = key.to_ascii_lowercase();
    known
        .iter()
        .map(|name| {
            let candidate = name.to_ascii_lowercase();
            (strsim::osa_distance(&key, &candidate), *name, candidate)
        })
        .filter(|(distance, _, candidate)| {
            let limit = (key.len().max(candidate.len()) / 3).max(1);
            *distance <= limit
                || (key.len() >= 3 && (candidate.starts_with(&key) || key.starts_with(candidate)))
        })
        .min_by_key(|(distance, _, _)| *distance)
        .map(|(_, name, _)| name)
}

/// A serde error message about the value at `path` (`segmentation.csv`,
/// `tones`, or empty for the top level), reworded when it is about an unknown
/// field or variant: ``unknown key `toness` (did you mean `tones`? known keys:
/// ...)``. Other messages are kept, prefixed with the path.
pub fn explain(path: &str, message: &str) -> String {
    let path = path.trim_matches('.');
    let found = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|marker| message.find(marker).map(|at| (marker, at)));
    let Some((marker, at)) = found else {
        // serde_norway already leads with the path; serde_json does not.
        return if path.is_empty() || message.starts_with(&format!("{path}: ")) {
            message.to_string()
        } else {
            format!("key `{path}`: {message}")
        };
    };
    let is_key = marker.starts_with("unknown field");
    let Some((unknown, rest)) = message[at + marker.len()..].split_once('`') else {
        return message.to_string();
    };
    // serde_norway and serde_json append the position: keep it.
    let (expected, location) = match rest.find(" at line ") {
        Some(at) => (&rest[..at], &rest[at..]),
        None => (rest, ""),
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let hint = match closest(unknown, &known) {
        Some(best) => format!("did you mean `{best}`? "),
        None => String::new(),
    };
    let (subject, noun) = if is_key {
        (format!("key `{}`", qualified(path, unknown)), "keys")
    } else if path.is_empty() {
        (format!("value `{unknown}`"), "values")
    } else {
        (format!("value `{unknown}` for `{path}`"), "values")
    };
    if known.is_empty() {
        format!("unknown {subject}{location}")
    } else {
        format!(
            "unknown {subject} ({hint}known {noun}: {}){location}",
            known.join(", ")
        )
    }
}

/// The dotted name of an unknown key: serde_path_to_error may or may not have
/// stepped into the key itself.
fn qualified(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else if path == key || path.ends_with(&format!(".{key}")) {
        path.to_string()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Campaign {
        campaign_id: String,
        tones: Vec<String>,
        arm_weights: Option<u32>,
        audience: Option<Audience>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Audience {
        Csv { path: String },
        Inline { customers: Vec<String> },
    }

    fn error(yaml: &str) -> String {
        let de = serde_norway::Deserializer::from_str(yaml);
        let err = serde_path_to_error::deserialize::<_, Campaign>(de).unwrap_err();
        explain(&err.path().to_string(), &err.inner().to_string())
    }

    #[test]
    fn closest_finds_typos_not_strangers() {
        let known = ["tones", "arm_weights", "campaign_id", "suppressions"];
        assert_eq!(closest("toness", &known), Some("tones"));
        assert_eq!(closest("Tone", &known), Some("tones"));
        assert_eq!(closest("arm_weight", &known), Some("arm_weights"));
        assert_eq!(closest("campaignid", &known), Some("campaign_id"));
        assert_eq!(closest("suppresions", &known), Some("suppressions"));
        assert_eq!(closest("budget", &known), None);
    }

    #[test]
    fn serde_messages_become_hints_with_the_path() {
        let err = error("campaign_id: a\ntoness: [urgent]\ntones: []\n");
        assert!(
            err.starts_with("unknown key `toness` (did you mean `tones`? known keys: campaign_id, tones, arm_weights, audience)"),
            "{err}"
        );
        assert!(err.contains("line 2"), "{err}");
        let err = error("campaign_id: a\ntones: []\naudience:\n  kind: csv\n  paht: x.csv\n");
        assert!(
            err.contains("unknown key `audience.paht` (did you mean `path`?"),
            "{err}"
        );
        let err = error("campaign_id: a\ntones: []\naudience:\n  kind: cvs\n  path: x\n");
        assert!(
            err.contains("unknown value `cvs` for `audience.kind` (did you mean `csv`?"),
            "{err}"
        );
        let err = error("campaign_id: a\ntones: []\nbudget: 3\n");
        assert!(
            err.starts_with("unknown key `budget` (known keys:"),
            "{err}"
        );
        let err = error("campaign_id: a\ntones: 3\n");
        assert!(err.starts_with("tones: invalid type"), "{err}");
        assert_eq!(
            explain("runtime.max_attempts", "invalid type: string \"lots\""),
            "key `runtime.max_attempts`: invalid type: string \"lots\""
        );
    }
}
