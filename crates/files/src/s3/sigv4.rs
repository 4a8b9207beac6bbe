//! AWS Signature Version 4 for S3, header-based, single-chunk payloads.
//!
//! Hand-rolled (about a hundred lines) rather than pulling in the AWS SDK: the store needs
//! four operations, and the payload hash the upload already computed becomes
//! `x-amz-content-sha256`, so the signature covers the bytes without hashing them twice.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

/// The payload hash of an empty body (GET, HEAD, DELETE).
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What a request signature is computed over. Header names must be lower-case; `host`,
/// `x-amz-date` and `x-amz-content-sha256` must be among them.
#[derive(Debug)]
pub struct SignInput<'a> {
    pub method: &'a str,
    /// Already URI-encoded path (see [`uri_encode_path`]).
    pub canonical_uri: &'a str,
    /// Unencoded query pairs; encoded and sorted here.
    pub query: &'a [(&'a str, &'a str)],
    pub headers: &'a [(&'a str, &'a str)],
    pub payload_sha256: &'a str,
}

/// Signing credentials and scope. Deliberately not `Debug`: it holds the secret.
pub struct Signer<'a> {
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
}

/// `20130524T000000Z`, the `x-amz-date` format.
pub fn amz_date(at: OffsetDateTime) -> String {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(&fmt)
        .unwrap_or_default()
}

/// Percent-encodes everything except RFC 3986 unreserved characters (and `/` when asked).
pub fn uri_encode(input: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// S3 encodes each path segment once (no double encoding, unlike other services).
pub fn uri_encode_path(path: &str) -> String {
    uri_encode(path, true)
}

pub fn canonical_request(input: &SignInput<'_>) -> (String, String) {
    let mut query: Vec<(String, String)> = input
        .query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    query.sort();
    let query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");

    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");

    let request = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        input.method,
        input.canonical_uri,
        query,
        canonical_headers,
        signed_headers,
        input.payload_sha256
    );
    (request, signed_headers)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return Vec::new(),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
fn derive_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

impl Signer<'_> {
    pub fn signing_key(&self, date: &str) -> Vec<u8> {
        derive_key(self.secret_access_key, date, self.region, "s3")
    }

    pub fn string_to_sign(&self, amz_date: &str, canonical_request: &str) -> String {
        let date = amz_date.get(..8).unwrap_or_default();
        format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{}/s3/aws4_request\n{}",
            self.region,
            hex::encode(Sha256::digest(canonical_request.as_bytes()))
        )
    }

    /// The `Authorization` header value for a request made at `amz_date`.
    pub fn authorization(&self, amz_date: &str, input: &SignInput<'_>) -> String {
        let (request, signed_headers) = canonical_request(input);
        let date = amz_date.get(..8).unwrap_or_default();
        let to_sign = self.string_to_sign(amz_date, &request);
        let signature = hex::encode(hmac(&self.signing_key(date), to_sign.as_bytes()));
        let credential = format!(
            "{}/{date}/{}/s3/aws4_request",
            self.access_key_id, self.region
        );
        format!(
            "AWS4-HMAC-SHA256 Credential={credential},SignedHeaders={signed_headers},Signature={signature}"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The "GET Object" example of the S3 SigV4 documentation ("Signature Calculations for the
    // Authorization Header: Transferring Payload in a Single Chunk").
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "20130524T000000Z";

    fn example_signer() -> Signer<'static> {
        Signer {
            access_key_id: "AKIAIOSFODNN7EXAMPLE",
            secret_access_key: SECRET,
            region: "us-east-1",
        }
    }

    fn get_object_example() -> SignInput<'static> {
        SignInput {
            method: "GET",
            canonical_uri: "/test.txt",
            query: &[],
            headers: &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
                ("x-amz-content-sha256", EMPTY_SHA256),
                ("x-amz-date", DATE),
            ],
            payload_sha256: EMPTY_SHA256,
        }
    }

    #[test]
    fn canonical_request_matches_the_documented_get_object_example() {
        let (request, signed) = canonical_request(&get_object_example());
        let expected = "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n\
            x-amz-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n\
            x-amz-date:20130524T000000Z\n\nhost;range;x-amz-content-sha256;x-amz-date\n\
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(request, expected);
        assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
        assert_eq!(
            example_signer().string_to_sign(DATE, &request),
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n\
             7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972"
        );
    }

    #[test]
    fn authorization_matches_the_documented_get_object_example() {
        assert_eq!(
            example_signer().authorization(DATE, &get_object_example()),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn signing_key_derivation_matches_the_documented_example() {
        // "Examples of how to derive a signing key for Signature Version 4" (IAM, 20120215).
        let key = derive_key(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20120215",
            "us-east-1",
            "iam",
        );
        assert_eq!(
            hex::encode(key),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
    }

    #[test]
    fn authorization_matches_the_documented_put_object_example() {
        let payload = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        let input = SignInput {
            method: "PUT",
            canonical_uri: &uri_encode_path("/test$file.text"),
            query: &[],
            headers: &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("date", "Fri, 24 May 2013 00:00:00 GMT"),
                ("x-amz-date", DATE),
                ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
                ("x-amz-content-sha256", payload),
            ],
            payload_sha256: payload,
        };
        let auth = example_signer().authorization(DATE, &input);
        assert!(
            auth.contains(
                "SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class,"
            ),
            "{auth}"
        );
        assert!(
            auth.ends_with(
                "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{auth}"
        );
    }

    #[test]
    fn query_is_encoded_and_sorted_and_header_values_trimmed() {
        let input = SignInput {
            method: "GET",
            canonical_uri: "/",
            query: &[("prefix", "a b/c"), ("list-type", "2"), ("delimiter", "/")],
            headers: &[("x-amz-date", DATE), ("Host", "  h   x ")],
            payload_sha256: EMPTY_SHA256,
        };
        let (request, signed) = canonical_request(&input);
        let lines: Vec<&str> = request.lines().collect();
        assert_eq!(lines[2], "delimiter=%2F&list-type=2&prefix=a%20b%2Fc");
        assert_eq!(lines[3], "host:h x");
        assert_eq!(signed, "host;x-amz-date");
    }

    #[test]
    fn paths_keep_slashes_and_encode_the_rest() {
        assert_eq!(
            uri_encode_path("/bucket/files/a b+c~d.e"),
            "/bucket/files/a%20b%2Bc~d.e"
        );
        assert_eq!(uri_encode("é", false), "%C3%A9");
    }

    #[test]
    fn amz_date_is_utc_basic_format() {
        let at = OffsetDateTime::from_unix_timestamp(1_369_353_600)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(amz_date(at), DATE);
    }
}
