//! AWS Signature Version 4 for one request (header signing), written with
//! hmac and sha2: the canonical request, the string to sign, the derived key
//! and the `Authorization` header. Checked against the vectors of AWS's
//! published SigV4 test suite (below) and, end to end, by moto's server mode
//! with its IAM authentication switched on (tests/esp_ses.rs).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// An access key pair, plus the session token of temporary credentials.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    // The secret and the token never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What is signed of a request. `headers` are (lowercase name, value) and
/// must include `host`; the signer adds `x-amz-date` (and the token).
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, not yet encoded (`/v2/email/outbound-emails`).
    pub path: &'a str,
    /// Query parameters, not yet encoded.
    pub query: &'a [(&'a str, &'a str)],
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

/// The headers to add to the request: `x-amz-date`, `x-amz-security-token`
/// when there is a session token, and `authorization`.
pub fn sign(
    request: &Request<'_>,
    credentials: &Credentials,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Vec<(&'static str, String)> {
    let amz_date = amz_date(time);
    let mut headers: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.to_ascii_lowercase(), normalize_value(value)))
        .collect();
    headers.push(("x-amz-date".into(), amz_date.clone()));
    if let Some(token) = &credentials.session_token {
        headers.push(("x-amz-security-token".into(), token.clone()));
    }
    headers.sort();
    let authorization = authorization(request, &headers, credentials, region, service, &amz_date);
    let mut added = vec![("x-amz-date", amz_date)];
    if let Some(token) = &credentials.session_token {
        added.push(("x-amz-security-token", token.clone()));
    }
    added.push(("authorization", authorization));
    added
}

fn authorization(
    request: &Request<'_>,
    sorted_headers: &[(String, String)],
    credentials: &Credentials,
    region: &str,
    service: &str,
    amz_date: &str,
) -> String {
    let signed_headers = sorted_headers
        .iter()
        .map(|(name, _)| name.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_headers: String = sorted_headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    let canonical_request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        request.method,
        canonical_path(request.path),
        canonical_query(request.query),
        canonical_headers,
        signed_headers,
        hex::encode(Sha256::digest(request.body)),
    );
    let day = &amz_date[..8];
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = hmac(
        format!("AWS4{}", credentials.secret_access_key).as_bytes(),
        day.as_bytes(),
    );
    for part in [region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    format!(
        "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        credentials.access_key_id
    )
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length, so `new_from_slice` cannot fail here.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Header values are trimmed and inner runs of spaces become one.
fn normalize_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Each segment URI-encoded (RFC 3986 unreserved characters kept). Services
/// other than S3 expect the path encoded once more on top of what the
/// request line carries; our paths hold unreserved characters only, where
/// both are the same.
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn uri_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `YYYYMMDD'T'HHMMSS'Z'` in UTC.
pub fn amz_date(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn suite_credentials() -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: None,
        }
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's test suite.
    fn suite_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn suite_signature(method: &str, query: &[(&str, &str)]) -> String {
        let request = Request {
            method,
            path: "/",
            query,
            headers: &[("Host", "example.amazonaws.com")],
            body: b"",
        };
        let headers = sign(
            &request,
            &suite_credentials(),
            "us-east-1",
            "service",
            suite_time(),
        );
        assert_eq!(headers[0], ("x-amz-date", "20150830T123600Z".to_string()));
        let auth = &headers.last().unwrap().1;
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="),
            "{auth}"
        );
        auth.rsplit_once("Signature=").unwrap().1.to_string()
    }

    #[test]
    fn reproduces_the_published_test_suite() {
        assert_eq!(
            suite_signature("GET", &[]),
            "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
        assert_eq!(
            suite_signature("POST", &[]),
            "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"
        );
        // get-vanilla-query-order-key-case: parameters are sorted.
        assert_eq!(
            suite_signature("GET", &[("Param2", "value2"), ("Param1", "value1")]),
            "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    #[test]
    fn a_session_token_is_signed_and_secrets_stay_out_of_debug() {
        let mut credentials = suite_credentials();
        credentials.session_token = Some("TOKEN-xyz".into());
        let request = Request {
            method: "POST",
            path: "/v2/email/outbound-emails",
            query: &[],
            headers: &[("host", "email.eu-west-1.amazonaws.com")],
            body: b"{}",
        };
        let headers = sign(&request, &credentials, "eu-west-1", "ses", suite_time());
        assert_eq!(
            headers[1],
            ("x-amz-security-token", "TOKEN-xyz".to_string())
        );
        assert!(
            headers[2]
                .1
                .contains("SignedHeaders=host;x-amz-date;x-amz-security-token,")
        );
        let debug = format!("{credentials:?}");
        assert!(
            !debug.contains("wJalr") && !debug.contains("TOKEN-xyz"),
            "{debug}"
        );
    }

    #[test]
    fn dates_are_utc_calendar_dates() {
        assert_eq!(amz_date(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(amz_date(suite_time()), "20150830T123600Z");
        // A leap day.
        let leap = UNIX_EPOCH + Duration::from_secs(1_709_164_800 + 3_661);
        assert_eq!(amz_date(leap), "20240229T010101Z");
    }
}
