//! The credentials the supervisor holds for `inject`, as the proxy is handed them: never in
//! the sandbox, never in the log, scrubbed from every response.

use std::fmt;

use crate::sigv4::AwsCredentials;

/// One rule's credential, filed under [`egress_policy::Inject::credential_key`].
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A static secret: an API key or token (the `header`, `bearer` and `azure-api-key`
    /// forms).
    Secret(String),
    /// AWS keys the proxy signs with (the `aws-sigv4` form).
    Aws(AwsCredentials),
    /// A Google key the supervisor mints access tokens with (the `google-oauth` form).
    Google(crate::google_oauth::GoogleCredentials),
}

impl Credential {
    /// Every string of this credential that must never reach the agent, for the response
    /// scrub.
    pub fn secret_strings(&self) -> Vec<&str> {
        match self {
            Credential::Secret(v) => vec![v.as_str()],
            Credential::Aws(a) => {
                let mut v = vec![a.access_key_id.as_str(), a.secret_access_key.as_str()];
                v.extend(a.session_token.as_deref());
                v
            }
            Credential::Google(g) => g.secret_strings(),
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Secret(_) => f.write_str("Secret(…)"),
            Credential::Aws(a) => write!(f, "Aws({a:?})"),
            Credential::Google(g) => write!(f, "Google({g:?})"),
        }
    }
}
