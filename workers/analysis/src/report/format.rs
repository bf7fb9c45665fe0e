//! Number formatting shared by the HTML and markdown reports.

/// A rate as a percentage: `30.6%`.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// A signed relative lift: `+26.3%`.
pub fn signed_percent(lift: f64) -> String {
    format!("{:+.1}%", lift * 100.0)
}

/// A difference of rates in percentage points: `+8.1`.
pub fn points(diff: f64) -> String {
    format!("{:+.1}", diff * 100.0)
}

/// An interval of rates in percent: `23.1% to 44.2%`.
pub fn percent_interval(ci: [f64; 2]) -> String {
    format!("{} to {}", percent(ci[0]), percent(ci[1]))
}

/// An interval of differences in points: `-2.3 to +13.9`.
pub fn points_interval(ci: [f64; 2]) -> String {
    format!("{} to {}", points(ci[0]), points(ci[1]))
}

/// An interval of relative lifts: `-35.3% to +88.0%`.
pub fn lift_interval(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(
        || "n/a".into(),
        |ci| format!("{} to {}", signed_percent(ci[0]), signed_percent(ci[1])),
    )
}

/// A p-value to three decimals, or `< 0.001`.
pub fn p_value(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else {
        format!("{p:.3}")
    }
}

/// A lift magnitude for sentences: whole percent from 10% up, one decimal below.
pub fn lift_magnitude(lift: f64) -> String {
    let percent = lift * 100.0;
    if percent >= 10.0 {
        format!("{percent:.0}%")
    } else {
        format!("{percent:.1}%")
    }
}

/// Integers with thousands separators: `1,000,000`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_read_naturally() {
        assert_eq!(percent(0.30645), "30.6%");
        assert_eq!(points(0.081), "+8.1");
        assert_eq!(points_interval([-0.023, 0.139]), "-2.3 to +13.9");
        assert_eq!(p_value(0.0004), "< 0.001");
        assert_eq!(p_value(0.3454), "0.345");
        assert_eq!(lift_magnitude(0.6049), "60%");
        assert_eq!(lift_magnitude(0.042), "4.2%");
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(62), "62");
        assert_eq!(escape("<a & 'b'>"), "&lt;a &amp; &#39;b&#39;&gt;");
    }
}
