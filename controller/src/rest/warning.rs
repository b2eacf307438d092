//! The API server's warnings as HTTP `Warning` headers, as kube-apiserver's warning recorder
//! writes them (k8s.io/apiserver's `WithWarningRecorder`, k8s.io/apimachinery's
//! `NewWarningHeader`): `299 - "TEXT"` (RFC 7234's warn-code 299, "miscellaneous persistent
//! warning", with no agent), one header per warning, so that client-go hands each text to
//! kubectl, which prints it as `Warning: TEXT`.

/// Past this many characters of warning text in one answer, every warning is cut to
/// [`TRUNCATE_ITEM_RUNES`] (`truncateAtTotalRunes`), and once the cut ones reach it again the
/// rest are dropped.
const TRUNCATE_AT_TOTAL_RUNES: usize = 4 * 1024;
/// How many characters of each warning are kept once they are cut (`truncateItemRunes`).
const TRUNCATE_ITEM_RUNES: usize = 256;

/// The `Warning` header values of an answer carrying `warnings`, in order, as the recorder adds
/// them: empty and repeated texts dropped; a text that is not one line of printable characters
/// (a control character) dropped, as `NewWarningHeader` refuses it; and the size limits above.
pub fn headers(warnings: &[String]) -> Vec<String> {
    let mut recorded: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    let mut written = 0;
    let mut truncating = false;
    for text in warnings {
        if text.is_empty() || (truncating && written >= TRUNCATE_AT_TOTAL_RUNES) || recorded.contains(&text.as_str()) {
            continue;
        }
        recorded.push(text);
        let (cut, runes) = if truncating { truncated(text) } else { (text.as_str(), text.chars().count()) };
        let Some(value) = header(cut) else { continue };
        if truncating || written + runes <= TRUNCATE_AT_TOTAL_RUNES {
            written += runes;
            out.push(value);
            continue;
        }
        // Over the limit: every warning so far is written again, cut.
        truncating = true;
        written = 0;
        out.clear();
        for text in &recorded {
            let (cut, runes) = truncated(text);
            if let Some(value) = header(cut) {
                written += runes;
                out.push(value);
            }
        }
    }
    out
}

/// `text` cut to [`TRUNCATE_ITEM_RUNES`] characters, and its length in characters.
fn truncated(text: &str) -> (&str, usize) {
    match text.char_indices().nth(TRUNCATE_ITEM_RUNES) {
        Some((end, _)) => (&text[..end], TRUNCATE_ITEM_RUNES),
        None => (text, text.chars().count()),
    }
}

/// `299 - "TEXT"`, `"` and `\` escaped with a backslash and everything else as it is
/// (`makeQuotedString`); `None` for a text with a control character.
fn header(text: &str) -> Option<String> {
    if text.chars().any(char::is_control) {
        return None;
    }
    let mut quoted = String::with_capacity(text.len() + 10);
    quoted.push_str("299 - \"");
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    Some(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn each_warning_is_one_header_quoted_as_kube_apiserver_quotes_it() {
        let pod_security = "would violate PodSecurity \"restricted:latest\": seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")";
        assert_eq!(
            headers(&strings(&[pod_security, "a\\b", "", pod_security, "é ok"])),
            [
                "299 - \"would violate PodSecurity \\\"restricted:latest\\\": seccompProfile (pod or container \\\"c\\\" must set securityContext.seccompProfile.type to \\\"RuntimeDefault\\\" or \\\"Localhost\\\")\"",
                "299 - \"a\\\\b\"",
                "299 - \"é ok\"",
            ]
        );
        // A control character makes no header.
        assert_eq!(headers(&strings(&["two\nlines", "tab\there", "fine"])), ["299 - \"fine\""]);
        assert!(headers(&[]).is_empty());
    }

    #[test]
    fn past_4096_characters_every_warning_is_cut_to_256_and_then_the_rest_dropped() {
        // 13 warnings of 300 characters fit (3,900); the 14th would make 4,200.
        let long: Vec<String> = (0..40).map(|i| format!("{i:03}{}", "x".repeat(297))).collect();
        let fitting = headers(&long[..13]);
        assert_eq!(fitting.len(), 13);
        assert!(fitting.iter().all(|h| h.len() == 300 + 8), "whole");
        // The 14th goes over: all are cut to 256, and added while the total is under 4,096
        // (16 × 256 = 4,096), the ones after dropped.
        let cut = headers(&long);
        assert_eq!(cut.len(), 16);
        assert!(cut.iter().all(|h| h.len() == 256 + 8), "cut");
        assert!(cut[15].starts_with("299 - \"015"));
        // Characters, not bytes.
        let wide = "é".repeat(300);
        let mut many = vec![wide.clone()];
        many.extend((0..20).map(|i| format!("{i}{}", "é".repeat(299))));
        assert!(headers(&many).iter().all(|h| h.chars().count() == 256 + 8));
    }
}
