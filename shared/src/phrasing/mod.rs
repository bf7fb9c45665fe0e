//! Tone phrasing: the fixed words around the facts of a message, defined once.
//!
//! The composer draws every greeting, framing line, call to action and
//! sign-off from these banks; safety's claim check accepts a sentence without
//! a citation only when it is one of them (or the signature line below), so
//! both stages read the same list and a generator cannot declare its own
//! wording to be "phrasing".
//!
//! Everything here is tone, never content: no prices, no percentages, no
//! product facts, no promises ("guaranteed", "risk-free", "cure", "free"), no
//! deadlines ("last chance", "ends soon"). A test scans every phrase for the
//! words and signs that would make a claim (`CLAIM_WORDS`, `CLAIM_PHRASES`).
//!
//! Merge fields: greetings may use `{{first_name}}`; calls to action with a URL
//! use `{{cta_url}}`. Subjects carry no merge field (their length is checked as
//! written) and `{topic}` is filled in by the generation stage.

mod words;

pub use words::{
    CLAIM_PHRASES, CLAIM_WORDS, MAX_BRAND_CHARS, PROMISE_WORDS, is_plain_brand, signature,
    signature_brand,
};

/// The phrase bank a tone uses. Tones the banks do not know fall back to
/// `Informational`, the one that makes no emotional promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToneKind {
    Urgent,
    Informational,
    Friendly,
}

impl ToneKind {
    pub const ALL: [ToneKind; 3] = [
        ToneKind::Urgent,
        ToneKind::Informational,
        ToneKind::Friendly,
    ];

    pub fn of(tone: &str) -> Self {
        match tone.trim().to_lowercase().as_str() {
            "urgent" | "urgency" | "timely" => ToneKind::Urgent,
            "friendly" | "warm" | "casual" | "playful" => ToneKind::Friendly,
            _ => ToneKind::Informational,
        }
    }
}

/// The framing line a segment gets (the generation stage decides which
/// segment is which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Premium,
    WinBack,
    Welcome,
    Thanks,
    Neutral,
}

impl Framing {
    pub const ALL: [Framing; 5] = [
        Framing::Premium,
        Framing::WinBack,
        Framing::Welcome,
        Framing::Thanks,
        Framing::Neutral,
    ];
}

/// Which bank to draw from: a treatment tone, or the control message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Register {
    Tone(ToneKind),
    Control,
}

impl Register {
    pub const ALL: [Register; 4] = [
        Register::Tone(ToneKind::Urgent),
        Register::Tone(ToneKind::Informational),
        Register::Tone(ToneKind::Friendly),
        Register::Control,
    ];
}

pub struct Bank {
    pub greetings: &'static [&'static str],
    /// Subject templates around `{topic}` (the campaign name, fitted to length).
    pub subjects: &'static [&'static str],
    /// Subjects used when no topic fits.
    pub plain_subjects: &'static [&'static str],
    pub ctas_with_url: &'static [&'static str],
    pub ctas_without_url: &'static [&'static str],
    pub sign_offs: &'static [&'static str],
}

const URGENT: Bank = Bank {
    greetings: &["Hi {{first_name}},", "{{first_name}}, a quick heads-up:"],
    subjects: &[
        "Don't miss out: {topic}",
        "{topic}: take a look today",
        "Now's the time: {topic}",
    ],
    plain_subjects: &["Don't miss this", "Take a look today"],
    ctas_with_url: &[
        "Don't wait: take a look now at {{cta_url}}",
        "See it for yourself today: {{cta_url}}",
    ],
    ctas_without_url: &[
        "Don't wait: reply to this email today and we'll help you get started.",
        "Take a look today, and reply to this email if you have any questions.",
    ],
    sign_offs: &["See you soon,", "Talk soon,"],
};

const INFORMATIONAL: Bank = Bank {
    greetings: &["Hello {{first_name}},", "Dear {{first_name}},"],
    subjects: &[
        "{topic}: what you need to know",
        "Your guide to {topic}",
        "The details on {topic}",
    ],
    plain_subjects: &["What you need to know", "An update for you"],
    ctas_with_url: &[
        "You can find all the details here: {{cta_url}}",
        "Read more at {{cta_url}}",
    ],
    ctas_without_url: &[
        "If you have any questions, simply reply to this email.",
        "Reply to this email and our team will be glad to help.",
    ],
    sign_offs: &["Kind regards,", "Warm regards,"],
};

const FRIENDLY: Bank = Bank {
    greetings: &["Hey {{first_name}},", "Hi {{first_name}}!"],
    subjects: &[
        "We thought of you: {topic}",
        "Something for you: {topic}",
        "{topic}, with you in mind",
    ],
    plain_subjects: &["We thought of you", "Something we think you'll like"],
    ctas_with_url: &[
        "Come and take a look whenever you're ready: {{cta_url}}",
        "We'd love for you to check it out: {{cta_url}}",
    ],
    ctas_without_url: &[
        "We'd love to hear from you, so just reply to this email anytime.",
        "Questions or ideas? Just hit reply; we're always happy to chat.",
    ],
    sign_offs: &["Warm wishes,", "Cheers,", "With thanks,"],
};

/// Business as usual: no first name, no segment framing, no tone.
const CONTROL: Bank = Bank {
    greetings: &["Hello,"],
    subjects: &["{topic}", "News from us: {topic}"],
    plain_subjects: &["Our latest news"],
    ctas_with_url: &["Learn more at {{cta_url}}"],
    ctas_without_url: &["Reply to this email to learn more."],
    sign_offs: &["Regards,"],
};

/// The bank of a register.
pub fn bank(register: Register) -> &'static Bank {
    match register {
        Register::Tone(ToneKind::Urgent) => &URGENT,
        Register::Tone(ToneKind::Informational) => &INFORMATIONAL,
        Register::Tone(ToneKind::Friendly) => &FRIENDLY,
        Register::Control => &CONTROL,
    }
}

/// The one framing sentence between the greeting and the facts.
pub fn framings(register: Register, framing: Framing) -> &'static [&'static str] {
    use Framing::*;
    use ToneKind::*;
    let Register::Tone(tone) = register else {
        return &[
            "Here is the latest news from us.",
            "Here is an update on what's new.",
        ];
    };
    match (framing, tone) {
        (Premium, Urgent) => &[
            "As one of our most valued customers, we wanted this to reach you without delay.",
            "Because you've shopped with us so recently, we didn't want you to miss what's happening right now.",
        ],
        (Premium, Informational) => &[
            "As one of our most valued customers, here is a clear overview of what's new for you.",
            "We've put together the details that matter most to customers like you.",
        ],
        (Premium, Friendly) => &[
            "It's always a pleasure to have you with us, and we picked this with you in mind.",
            "Thanks for being such a valued part of our community; we think you'll enjoy this.",
        ],
        (WinBack, Urgent) => &[
            "It's been a while since we last saw you, so don't wait to see what's new.",
            "We'd love to have you back, and now is a good moment to take another look.",
        ],
        (WinBack, Informational) => &[
            "It's been a while since your last visit, so here is a short summary of what's new.",
            "Since we last saw you, a few things have changed; here is what you should know.",
        ],
        (WinBack, Friendly) => &[
            "We've missed you! Here's a little of what's been happening since your last visit.",
            "It's been too long, and we'd love to welcome you back.",
        ],
        (Welcome, Urgent) => &[
            "Welcome aboard! Here's how to make the most of your first weeks with us, starting today.",
            "Welcome! There's no better moment than now to get to know us.",
        ],
        (Welcome, Informational) => &[
            "Welcome! Here is a short guide to what you can expect as a new customer.",
            "Thanks for joining us; here are the essentials to help you get started.",
        ],
        (Welcome, Friendly) => &[
            "Welcome to the family! We're so glad you're here.",
            "We're delighted you joined us, and we'd love to show you around.",
        ],
        (Thanks, Urgent) => &[
            "Thank you for shopping with us so often; we wanted you to hear about this right away.",
            "You're one of our regulars, so we didn't want you to miss this.",
        ],
        (Thanks, Informational) => &[
            "Thank you for your continued loyalty; here is an overview of what's new for you.",
            "As a thank-you for shopping with us so often, here are the details we think matter to you.",
        ],
        (Thanks, Friendly) => &[
            "Thank you for being one of our regulars; it means a lot to us.",
            "You keep coming back, and we truly appreciate it.",
        ],
        (Neutral, Urgent) => &[
            "Here's something worth your attention today.",
            "We don't want you to miss this.",
        ],
        (Neutral, Informational) => &[
            "Here is a quick update with the details you need.",
            "We've gathered the key details in one place for you.",
        ],
        (Neutral, Friendly) => &[
            "We thought you might like this.",
            "Here's a little something we think you'll enjoy.",
        ],
    }
}

/// Every line a message body may carry without a citation, except the
/// signature: greetings, framing lines, calls to action (with and without a
/// URL) and sign-offs of every register. Subjects are not body lines.
pub fn body_phrases() -> Vec<&'static str> {
    let mut all = Vec::new();
    for register in Register::ALL {
        let b = bank(register);
        for list in [
            b.greetings,
            b.ctas_with_url,
            b.ctas_without_url,
            b.sign_offs,
        ] {
            all.extend_from_slice(list);
        }
        for framing in Framing::ALL {
            all.extend_from_slice(framings(register, framing));
        }
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_phrases() -> Vec<&'static str> {
        let mut all = body_phrases();
        for register in Register::ALL {
            all.extend_from_slice(bank(register).subjects);
            all.extend_from_slice(bank(register).plain_subjects);
        }
        all
    }

    #[test]
    fn phrase_banks_make_no_factual_claims() {
        for phrase in all_phrases() {
            assert!(
                !phrase.contains(|c: char| c.is_ascii_digit() || "%$\u{20ac}\u{a3}".contains(c)),
                "number or money in {phrase:?}"
            );
            let lower = phrase.to_lowercase();
            for claim in CLAIM_PHRASES {
                assert!(!lower.contains(claim), "claim {claim:?} in {phrase:?}");
            }
            for word in lower.split(|c: char| !(c.is_alphanumeric() || c == '-')) {
                assert!(
                    !CLAIM_WORDS.contains(&word),
                    "claim word {word:?} in {phrase:?}"
                );
            }
        }
    }

    #[test]
    fn body_phrases_cover_every_bank_line() {
        let all = body_phrases();
        for register in Register::ALL {
            let b = bank(register);
            for list in [
                b.greetings,
                b.ctas_with_url,
                b.ctas_without_url,
                b.sign_offs,
            ] {
                assert!(!list.is_empty());
                assert!(list.iter().all(|p| all.contains(p)));
            }
            for framing in Framing::ALL {
                assert!(!framings(register, framing).is_empty());
            }
        }
    }

    #[test]
    fn control_reads_the_same_for_every_framing() {
        for framing in Framing::ALL {
            assert_eq!(
                framings(Register::Control, framing),
                framings(Register::Control, Framing::Premium)
            );
        }
    }

    #[test]
    fn tone_names_map_to_banks() {
        assert_eq!(ToneKind::of("Urgent"), ToneKind::Urgent);
        assert_eq!(ToneKind::of(" warm "), ToneKind::Friendly);
        assert_eq!(ToneKind::of("sarcastic"), ToneKind::Informational);
    }
}
