//! One approved document: YAML front matter, then the approved copy. Parsing
//! validates every field and names the file and the field when one is wrong.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize, Serializer};

use crate::corpus::CorpusError;
use crate::date::Date;
use crate::text::{audience_label, collapse_whitespace};

/// The audience label that suits every segment.
pub const AUDIENCE_ALL: &str = "all";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Product,
    Promotion,
    Support,
    Loyalty,
    Policy,
}

impl Category {
    pub const ALL: [Category; 5] = [
        Category::Product,
        Category::Promotion,
        Category::Support,
        Category::Loyalty,
        Category::Policy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Product => "product",
            Category::Promotion => "promotion",
            Category::Support => "support",
            Category::Loyalty => "loyalty",
            Category::Policy => "policy",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == raw.trim())
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One approved document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Document {
    /// Equal to the file stem; cited in messages as `[id]`.
    pub id: String,
    pub title: String,
    pub category: Category,
    /// Normalized labels (see `text::audience_label`); `all` suits every segment.
    pub audience: Vec<String>,
    pub keywords: Vec<String>,
    #[serde(serialize_with = "date_text")]
    pub approved_at: Date,
    #[serde(serialize_with = "opt_date_text")]
    pub expires_at: Option<Date>,
    /// The approved copy, whitespace folded to single spaces.
    pub body: String,
    /// Where a customer reads more (`https://` only): citations of this
    /// document become footnote links in the email instead of being removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

fn date_text<S: Serializer>(date: &Date, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(date)
}

fn opt_date_text<S: Serializer>(date: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match date {
        Some(d) => s.collect_str(d),
        None => s.serialize_none(),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// Front matter as written; every field optional so a missing one gets our
/// error (naming it) rather than serde's.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrontMatter {
    id: Option<String>,
    title: Option<String>,
    category: Option<String>,
    audience: Option<OneOrMany>,
    keywords: Option<OneOrMany>,
    approved_at: Option<String>,
    expires_at: Option<String>,
    url: Option<String>,
}

impl Document {
    /// Approved on or before `as_of` and not yet expired: a document is usable up
    /// to the day before its `expires_at`.
    pub fn is_live(&self, as_of: Date) -> bool {
        self.approved_at <= as_of && self.expires_at.is_none_or(|expiry| as_of < expiry)
    }

    /// Whether the document suits a segment described by these normalized labels.
    pub fn suits(&self, labels: &[String]) -> bool {
        self.audience
            .iter()
            .any(|a| a == AUDIENCE_ALL || labels.iter().any(|l| l == a))
    }

    /// Parse and validate one document; `file` names it in errors and its stem
    /// must equal the id.
    pub fn parse(file: &Path, text: &str) -> Result<Self, CorpusError> {
        let name = file.display().to_string();
        let field_error = |field: &str, message: String| CorpusError::Field {
            file: name.clone(),
            field: field.to_string(),
            message,
        };
        let (yaml, body) = split_front_matter(text).ok_or_else(|| CorpusError::File {
            file: name.clone(),
            message: "missing front matter: the file must start with a `---` line and the \
                      YAML must end with another `---` line"
                .into(),
        })?;
        let front: FrontMatter = serde_path_to_error::deserialize(
            serde_norway::Deserializer::from_str(yaml),
        )
        .map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // A misspelled key is reported by serde at the root, with the key in the message.
            let field = if path == "." {
                unknown_field(&inner)
            } else {
                path
            };
            field_error(&field, inner)
        })?;

        let required = |value: Option<String>, field: &str| -> Result<String, CorpusError> {
            match value.map(|v| v.trim().to_string()) {
                Some(v) if !v.is_empty() => Ok(v),
                _ => Err(field_error(field, "missing or empty".into())),
            }
        };
        let id = required(front.id, "id")?;
        if !is_valid_id(&id) {
            return Err(field_error(
                "id",
                format!("`{id}` must be lowercase letters and digits joined by single dashes"),
            ));
        }
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if id != stem {
            return Err(field_error(
                "id",
                format!("`{id}` must equal the file name without `.md` (`{stem}`)"),
            ));
        }
        let title = required(front.title, "title")?;
        if title.contains('\n') {
            return Err(field_error("title", "must be one line".into()));
        }
        let category_raw = required(front.category, "category")?;
        let category = Category::parse(&category_raw).ok_or_else(|| {
            field_error(
                "category",
                format!(
                    "`{category_raw}` is not one of product, promotion, support, loyalty, policy"
                ),
            )
        })?;
        let audience = labels(front.audience, "audience", audience_label, &field_error)?;
        let keywords = labels(
            front.keywords,
            "keywords",
            |k| k.trim().to_string(),
            &field_error,
        )?;
        let approved_at = Date::parse(&required(front.approved_at, "approved_at")?)
            .map_err(|e| field_error("approved_at", e.to_string()))?;
        let expires_at = match front.expires_at {
            None => None,
            Some(raw) => Some(
                Date::parse(raw.trim()).map_err(|e| field_error("expires_at", e.to_string()))?,
            ),
        };
        if let Some(expiry) = expires_at
            && expiry <= approved_at
        {
            return Err(field_error(
                "expires_at",
                format!("{expiry} is not after approved_at {approved_at}"),
            ));
        }
        let body = collapse_whitespace(body);
        if body.is_empty() {
            return Err(field_error(
                "body",
                "no approved copy after the front matter".into(),
            ));
        }
        // Generation quotes bodies verbatim; a merge field in approved copy would be
        // rendered per customer, which is not what compliance approved.
        if body.contains("{{") || body.contains("}}") {
            return Err(field_error(
                "body",
                "must not contain merge fields (`{{ }}`)".into(),
            ));
        }
        let url = match front.url.map(|u| u.trim().to_string()) {
            None => None,
            Some(u) if is_https_link(&u) => Some(u),
            Some(u) => {
                return Err(field_error(
                    "url",
                    format!(
                        "`{u}` must be one https:// link without spaces (at most 2000 characters)"
                    ),
                ));
            }
        };
        Ok(Document {
            id,
            title,
            category,
            audience,
            keywords,
            approved_at,
            expires_at,
            body,
            url,
        })
    }
}

/// A document link must be plain `https://host...` text a mail client keeps whole.
fn is_https_link(url: &str) -> bool {
    url.len() <= 2000
        && url
            .strip_prefix("https://")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'))
        && url.chars().all(|c| c.is_ascii_graphic())
        && !url.contains(['<', '>', '"', '\\'])
}

fn labels(
    raw: Option<OneOrMany>,
    field: &str,
    normalize: impl Fn(&str) -> String,
    field_error: &impl Fn(&str, String) -> CorpusError,
) -> Result<Vec<String>, CorpusError> {
    let values = raw.map(OneOrMany::into_vec).unwrap_or_default();
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for value in &values {
        let normalized = normalize(value);
        if normalized.is_empty() {
            return Err(field_error(field, format!("`{value}` is empty")));
        }
        if !out.contains(&normalized) {
            out.push(normalized);
        }
    }
    if out.is_empty() {
        return Err(field_error(field, "missing or empty".into()));
    }
    Ok(out)
}

fn unknown_field(message: &str) -> String {
    message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .unwrap_or("front matter")
        .to_string()
}

fn is_valid_id(id: &str) -> bool {
    id.split('-').all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// `(yaml, body)` when `text` opens with a `---` line and a later `---` line closes the YAML.
fn split_front_matter(text: &str) -> Option<(&str, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))?;
    let mut offset = 0;
    for line in rest.split_inclusive('\n') {
        if line.trim_end() == "---" {
            return Some((&rest[..offset], &rest[offset + line.len()..]));
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---\nid: prod-x\ntitle: X Jacket\ncategory: product\naudience: [All, High Value]\nkeywords: [jacket]\napproved_at: 2026-01-01\nexpires_at: 2026-03-01\n---\nThe X Jacket is warm.\nThe X Jacket is $10.\n";

    fn parse(text: &str) -> Result<Document, CorpusError> {
        Document::parse(Path::new("content/prod-x.md"), text)
    }

    fn field_of(err: CorpusError) -> String {
        match err {
            CorpusError::Field { field, file, .. } => {
                assert_eq!(file, "content/prod-x.md");
                field
            }
            other => panic!("expected a field error, got {other}"),
        }
    }

    #[test]
    fn a_good_document_parses_and_normalizes() {
        let doc = parse(GOOD).unwrap();
        assert_eq!(doc.audience, ["all", "high-value"]);
        assert_eq!(doc.body, "The X Jacket is warm. The X Jacket is $10.");
        assert_eq!(doc.expires_at, Some(Date::parse("2026-03-01").unwrap()));
    }

    #[test]
    fn a_document_url_must_be_https() {
        assert_eq!(parse(GOOD).unwrap().url, None);
        let with = |url: &str| GOOD.replace("keywords:", &format!("url: {url}\nkeywords:"));
        let doc = parse(&with("https://www.example.com/x-jacket")).unwrap();
        assert_eq!(doc.url.as_deref(), Some("https://www.example.com/x-jacket"));
        for bad in [
            "http://www.example.com/x",
            "javascript:alert(1)",
            "'https://a b'",
        ] {
            assert_eq!(field_of(parse(&with(bad)).unwrap_err()), "url", "{bad}");
        }
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("category: product", "category: gadget", "category"),
            ("title: X Jacket\n", "", "title"),
            (
                "approved_at: 2026-01-01",
                "approved_at: 2026-02-30",
                "approved_at",
            ),
            (
                "expires_at: 2026-03-01",
                "expires_at: 2025-03-01",
                "expires_at",
            ),
            ("id: prod-x", "id: prod-y", "id"),
            ("id: prod-x", "id: Prod X", "id"),
            ("audience: [All, High Value]", "audience: []", "audience"),
            (
                "audience: [All, High Value]",
                "audience: {a: 1}",
                "audience",
            ),
            ("keywords: [jacket]", "kewords: [jacket]", "kewords"),
            ("The X Jacket is warm.", "Hi {{first_name}}.", "body"),
        ];
        for (from, to, field) in cases {
            let text = GOOD.replace(from, to);
            assert_eq!(field_of(parse(&text).unwrap_err()), field, "{to}");
        }
    }

    #[test]
    fn missing_front_matter_names_the_file() {
        let err = parse("id: prod-x\nno fences\n").unwrap_err().to_string();
        assert!(err.starts_with("content/prod-x.md:"), "{err}");
    }

    #[test]
    fn liveness_respects_approval_and_expiry_days() {
        let doc = parse(GOOD).unwrap();
        let day = |s| Date::parse(s).unwrap();
        assert!(!doc.is_live(day("2025-12-31")));
        assert!(doc.is_live(day("2026-01-01")));
        assert!(doc.is_live(day("2026-02-28")));
        assert!(!doc.is_live(day("2026-03-01")));
    }
}
