//! A Sentry DSN, `{scheme}://{public_key}@{host}[:{port}][/{path}]/{project_id}`, read into
//! where envelopes go and the header that authenticates them.

/// Where a monitor takes envelopes, and how to sign them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// `{scheme}://{host}[:{port}][/{path}]/api/{project_id}/envelope/`
    pub envelope_url: String,
    pub public_key: String,
    /// The DSN for the envelope header: as given, without a legacy secret key (`pub:secret@`),
    /// which would otherwise travel in every report.
    pub dsn: String,
}

impl Dsn {
    /// None for an empty or malformed DSN: a deployment without one sends nothing.
    pub fn parse(dsn: &str) -> Option<Dsn> {
        let dsn = dsn.trim();
        let (scheme, rest) = dsn.split_once("://")?;
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let (public_key, rest) = rest.split_once('@')?;
        let public_key = public_key.split(':').next().unwrap_or("");
        let (base, project_id) = rest.trim_end_matches('/').rsplit_once('/')?;
        let ok = !public_key.is_empty()
            && public_key.bytes().all(|b| b.is_ascii_alphanumeric())
            && !base.is_empty()
            && !base.contains(['?', '#', '@', ' '])
            && !project_id.is_empty()
            && project_id.bytes().all(|b| b.is_ascii_digit());
        ok.then(|| Dsn {
            envelope_url: format!("{scheme}://{base}/api/{project_id}/envelope/"),
            public_key: public_key.to_string(),
            dsn: format!("{scheme}://{public_key}@{}", rest.trim_end_matches('/')),
        })
    }

    /// The `X-Sentry-Auth` header's value.
    pub fn auth_header(&self, client: &str) -> String {
        format!("Sentry sentry_version=7, sentry_key={}, sentry_client={client}", self.public_key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsn_names_the_envelope_endpoint_and_key() {
        let d = Dsn::parse("https://abc123@o1.ingest.sentry.io/42").unwrap();
        assert_eq!(d.envelope_url, "https://o1.ingest.sentry.io/api/42/envelope/");
        assert_eq!(d.auth_header("millimetric/1"), "Sentry sentry_version=7, sentry_key=abc123, sentry_client=millimetric/1");
        let local = Dsn::parse(" http://k@127.0.0.1:9000/prefix/7/ ").unwrap();
        assert_eq!(local.envelope_url, "http://127.0.0.1:9000/prefix/api/7/envelope/");
        let legacy = Dsn::parse("https://pub:legacy-secret@host/1").unwrap();
        assert_eq!((legacy.public_key.as_str(), legacy.dsn.as_str()), ("pub", "https://pub@host/1"), "the secret goes nowhere");
        assert_eq!(d.dsn, "https://abc123@o1.ingest.sentry.io/42");
        for bad in ["", "not a dsn", "ftp://k@h/1", "https://h/1", "https://@h/1", "https://k@h/", "https://k@h/abc", "https://k@/1"] {
            assert_eq!(Dsn::parse(bad), None, "{bad}");
        }
    }
}
