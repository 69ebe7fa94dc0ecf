//! A database URL that never shows its password.

use std::fmt;

use serde::Deserialize;

/// A `postgres://` URL. `Debug` and `Display` mask the password; [`DatabaseUrl::expose`] is the only way out.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Checks the scheme and keeps the URL.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| "must start with postgres:// or postgresql://".to_string())?;
        let host_part = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
        if host_part.is_empty() || host_part.starts_with('/') {
            return Err(
                "has no host (expected postgres://user:password@host:port/database)".into(),
            );
        }
        Ok(Self(url.to_string()))
    }

    /// The real URL, password included: only for opening connections.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The same server with another database name (used for per-test databases).
    pub fn with_database(&self, db: &str) -> Self {
        let (base, query) = match self.0.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (self.0.as_str(), None),
        };
        let scheme_end = base.find("://").map_or(0, |i| i + 3);
        let path_start = base[scheme_end..].find('/').map(|i| i + scheme_end);
        let server = path_start.map_or(base, |i| &base[..i]);
        match query {
            Some(q) => Self(format!("{server}/{db}?{q}")),
            None => Self(format!("{server}/{db}")),
        }
    }

    /// The database name in the path, if any.
    pub fn database(&self) -> Option<&str> {
        let base = self.0.split('?').next().unwrap_or_default();
        let after_scheme = base.split_once("://").map_or(base, |(_, r)| r);
        after_scheme
            .split_once('/')
            .map(|(_, db)| db)
            .filter(|db| !db.is_empty())
    }
}

/// `query` with the values of password-like parameters (`password`, `sslpassword`, any key holding
/// `password`, `secret` or `token`) replaced by `***`.
pub fn mask_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((k, _)) if is_secret_key(k) => format!("{k}=***"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "apikey", "api_key"]
        .iter()
        .any(|s| k.contains(s))
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str("<invalid url>");
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        match rest.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split(':').next().unwrap_or_default();
                if userinfo.contains(':') {
                    write!(f, "{scheme}://{user}:***@{host}")?;
                } else {
                    write!(f, "{scheme}://{user}@{host}")?;
                }
            }
            None => write!(f, "{scheme}://{rest}")?,
        }
        match query {
            Some(q) => write!(f, "?{}", mask_query(q)),
            None => Ok(()),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DatabaseUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shown() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db:5432/payouts").unwrap();
        assert_eq!(url.to_string(), "postgres://app:***@db:5432/payouts");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.expose(), "postgres://app:s3cret@db:5432/payouts");
    }

    #[test]
    fn password_in_the_query_never_shown() {
        for raw in [
            "postgres://app@db/payouts?password=s3cret",
            "postgres://app@db/payouts?sslmode=require&PASSWORD=s3cret",
            "postgresql://app:s3cret@db/payouts?sslpassword=s3cret&application_name=x",
            "postgres://app@db/payouts?options=-c&password=s3cret#frag",
        ] {
            let url = DatabaseUrl::parse(raw).unwrap();
            let shown = format!("{url} {url:?}");
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        let url = DatabaseUrl::parse("postgres://app@db/payouts?sslmode=require").unwrap();
        assert_eq!(url.to_string(), "postgres://app@db/payouts?sslmode=require");
    }

    #[test]
    fn rejects_other_schemes_and_missing_host() {
        assert!(DatabaseUrl::parse("mysql://x@y/z").is_err());
        assert!(DatabaseUrl::parse("not a url").is_err());
        assert!(DatabaseUrl::parse("postgres:///db").is_err());
    }

    #[test]
    fn swaps_database_name() {
        let url = DatabaseUrl::parse("postgres://u:p@h:1/a?sslmode=disable").unwrap();
        assert_eq!(
            url.with_database("b").expose(),
            "postgres://u:p@h:1/b?sslmode=disable"
        );
        assert_eq!(url.database(), Some("a"));
        let bare = DatabaseUrl::parse("postgres://u@h:1").unwrap();
        assert_eq!(bare.with_database("c").expose(), "postgres://u@h:1/c");
        assert_eq!(bare.database(), None);
    }
}
