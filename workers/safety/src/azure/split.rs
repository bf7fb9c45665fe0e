//! Cutting a text longer than the service's limit into overlapping pieces.

use crate::error::ScreenError;

/// Cut `text` into pieces of at most `limit` UTF-16 units, preferably after a
/// whitespace in the second half of a piece; each piece after the first starts
/// about `overlap` units before the previous one ended. `overlap` must be
/// below `limit / 2` (which also makes every character fit in a piece);
/// otherwise the text is not cut and the answer is a permanent error. With
/// `MAX_TEXT_UNITS` and `OVERLAP_UNITS` it cannot fail (checked at compile time).
pub fn chunks(text: &str, limit: usize, overlap: usize) -> Result<Vec<&str>, ScreenError> {
    if overlap >= limit / 2 {
        return Err(ScreenError::Rejected(format!(
            "text cannot be cut into pieces of {limit} units overlapping by {overlap}: the overlap must be below half the limit"
        )));
    }
    // (byte offset, UTF-16 offset) of every character, and of the end.
    let mut offsets = Vec::with_capacity(text.len() + 1);
    let mut units = 0;
    for (byte, c) in text.char_indices() {
        offsets.push((byte, units));
        units += c.len_utf16();
    }
    offsets.push((text.len(), units));
    if units <= limit {
        return Ok(vec![text]);
    }
    let last = offsets.len() - 1;
    let mut pieces = Vec::new();
    let mut start = 0; // index into offsets
    loop {
        let base = offsets[start].1;
        // The furthest end that fits.
        let mut end = start;
        while end < last && offsets[end + 1].1 - base <= limit {
            end += 1;
        }
        if end == last {
            pieces.push(&text[offsets[start].0..]);
            return Ok(pieces);
        }
        // Prefer to end just after a whitespace in the second half.
        let half = start + (end - start) / 2;
        if let Some(cut) = (half..end)
            .rev()
            .find(|&i| text[offsets[i].0..].starts_with(char::is_whitespace))
        {
            end = cut + 1;
        }
        pieces.push(&text[offsets[start].0..offsets[end].0]);
        let from = offsets[end].1.saturating_sub(overlap);
        let next = (start + 1..end)
            .find(|&i| offsets[i].1 >= from)
            .unwrap_or(end);
        start = next.max(start + 1);
    }
}
