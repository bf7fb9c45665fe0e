//! The minijinja layouts of `data/templates/`, embedded in the binary so it
//! works from any directory. The HTML layout autoescapes every value; the text
//! layout writes them as they are.

use std::fmt::Write;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind, Output, State};
use serde::Serialize;

use super::body::{Footnote, Segment};

const HTML: &str = "email.html";
const TEXT: &str = "email.txt";

/// What both layouts show.
#[derive(Debug, Serialize)]
pub struct View<'a> {
    pub subject: &'a str,
    pub brand: &'a str,
    pub paragraphs: &'a [Vec<Segment>],
    /// The text part's body, already flattened.
    pub text: &'a str,
    pub notes: &'a [Footnote],
    pub cta: Option<Cta<'a>>,
    pub postal_address: &'a str,
    pub unsubscribe_url: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct Cta<'a> {
    pub href: &'a str,
    pub label: &'a str,
}

/// HTML-escapes strings as minijinja does, except `/`: the five characters
/// that matter in text and quoted attributes, so links stay readable in the
/// source (`https://...`, not `https:&#x2f;&#x2f;...`). Everything else goes
/// to minijinja's own formatter.
fn html_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match (state.auto_escape(), value.as_str()) {
        (AutoEscape::Html, Some(text)) if !value.is_safe() => {
            let write_error = |_| Error::new(ErrorKind::WriteFailure, "write failed");
            for c in text.chars() {
                match c {
                    '<' => out.write_str("&lt;"),
                    '>' => out.write_str("&gt;"),
                    '&' => out.write_str("&amp;"),
                    '"' => out.write_str("&quot;"),
                    '\'' => out.write_str("&#39;"),
                    c => out.write_char(c),
                }
                .map_err(write_error)?;
            }
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

pub struct Layout {
    env: Environment<'static>,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Layout(email.html, email.txt)")
    }
}

impl Layout {
    pub fn embedded() -> Result<Self, String> {
        let mut env = Environment::new();
        // By the name we give, not the file's: HTML escaping for the HTML part only.
        env.set_auto_escape_callback(|name| {
            if name == HTML {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        // Undefined values are errors, so a typo in a layout fails the first
        // render (and the tests) instead of leaving a hole in every email.
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_formatter(html_formatter);
        env.add_template(
            HTML,
            include_str!("../../../../data/templates/email.html.j2"),
        )
        .map_err(|e| format!("data/templates/email.html.j2: {e}"))?;
        env.add_template(
            TEXT,
            include_str!("../../../../data/templates/email.txt.j2"),
        )
        .map_err(|e| format!("data/templates/email.txt.j2: {e}"))?;
        Ok(Self { env })
    }

    /// (text part, HTML part).
    pub fn render(&self, view: &View<'_>) -> Result<(String, String), String> {
        let render = |name: &str| {
            self.env
                .get_template(name)
                .and_then(|t| t.render(view))
                .map_err(|e| format!("layout {name}: {e}"))
        };
        let mut text = render(TEXT)?;
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok((text, render(HTML)?))
    }
}
