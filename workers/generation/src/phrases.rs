//! The phrase banks live in `cpo_shared::phrasing`, where safety's claim check
//! reads the same lines; this module keeps what only generation cares about:
//! the banks fit its subject limit and its merge-field contract.

pub use cpo_shared::phrasing::{Bank, Framing, Register, ToneKind, bank, body_phrases, framings};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{MAX_SUBJECT_CHARS, merge_fields};

    #[test]
    fn every_bank_fits_the_subject_limit_and_uses_only_allowed_merge_fields() {
        let mut all = body_phrases();
        for register in Register::ALL {
            let b = bank(register);
            assert!(b.subjects.iter().all(|s| s.contains("{topic}")));
            assert!(
                b.plain_subjects
                    .iter()
                    .all(|s| s.chars().count() <= MAX_SUBJECT_CHARS)
            );
            assert!(b.ctas_with_url.iter().all(|c| c.contains("{{cta_url}}")));
            assert!(b.ctas_without_url.iter().all(|c| !c.contains("{{")));
            all.extend_from_slice(b.subjects);
            all.extend_from_slice(b.plain_subjects);
        }
        for phrase in all {
            let fields = merge_fields(phrase).unwrap_or_else(|e| panic!("{phrase:?}: {e}"));
            assert!(
                fields.iter().all(|f| ["first_name", "cta_url"].contains(f)),
                "{phrase:?}"
            );
        }
    }

    #[test]
    fn control_is_not_personalized() {
        let b = bank(Register::Control);
        let control_text: Vec<&str> = [b.greetings, b.subjects, b.ctas_without_url, b.sign_offs]
            .concat()
            .into_iter()
            .chain(
                framings(Register::Control, Framing::Premium)
                    .iter()
                    .copied(),
            )
            .collect();
        assert!(control_text.iter().all(|p| !p.contains("first_name")));
    }
}
