//! The tokens a client authenticates with, chosen by `--auth-token`:
//! `simple` (random strings assigned through the log and kept in memory by
//! every member for `--auth-token-ttl`, renewed on use) or
//! `jwt,pub-key=P,priv-key=K,sign-method=M[,ttl=D]` (signed, self-contained,
//! carrying the user and the auth revision they were issued at).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Simple tokens of one member: token -> (user, expiry).
#[derive(Debug, Default)]
pub(super) struct SimpleTokens {
    by_token: HashMap<String, (String, Instant)>,
}

impl SimpleTokens {
    pub fn assign(&mut self, token: String, user: String, expires: Instant) {
        let now = Instant::now();
        self.by_token.retain(|_, (_, at)| *at > now);
        self.by_token.insert(token, (user, expires));
    }

    pub fn user_of(&mut self, token: &str, now: Instant, ttl: Duration) -> Option<String> {
        let (user, expires) = self.by_token.get_mut(token)?;
        if *expires <= now {
            self.by_token.remove(token);
            return None;
        }
        *expires = now + ttl;
        Some(user.clone())
    }

    pub fn invalidate_user(&mut self, name: &str) {
        self.by_token.retain(|_, (user, _)| user != name);
    }

    pub fn clear(&mut self) {
        self.by_token.clear();
    }
}

/// A new simple token: 16 random letters, a dot and a counter, like etcd's.
pub fn new_simple_token(counter: u64) -> String {
    let letters: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .map(char::from)
        .filter(char::is_ascii_alphabetic)
        .take(16)
        .collect();
    format!("{letters}.{counter}")
}

/// What a JWT says, with etcd's claim names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub username: String,
    pub revision: u64,
    pub exp: u64,
}

pub struct Jwt {
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    ttl: Duration,
}

pub enum TokenKind {
    Simple,
    Jwt(Box<Jwt>),
}

/// How this member issues and checks tokens.
pub struct TokenConfig {
    pub kind: TokenKind,
    /// `--auth-token-ttl`, for simple tokens.
    pub simple_ttl: Duration,
}

/// etcd's duration syntax for the JWT `ttl` option (`5m`, `30s`, `1h`).
fn parse_duration(text: &str) -> anyhow::Result<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().with_context(|| format!("invalid duration {text:?}"))?;
    Ok(Duration::from_secs(match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("invalid duration {text:?}"),
    }))
}

impl TokenConfig {
    /// Parses `--auth-token` (and reads the JWT key files).
    pub fn parse(spec: &str, simple_ttl: Duration) -> anyhow::Result<TokenConfig> {
        let mut parts = spec.split(',');
        let kind = match parts.next().unwrap_or("") {
            "simple" | "" => TokenKind::Simple,
            "jwt" => {
                let options: HashMap<&str, &str> = parts
                    .map(|p| {
                        p.split_once('=')
                            .ok_or_else(|| anyhow::anyhow!("invalid jwt option {p:?}"))
                    })
                    .collect::<anyhow::Result<_>>()?;
                TokenKind::Jwt(Box::new(Jwt::from_options(&options)?))
            }
            other => bail!("unknown token type: {other}"),
        };
        Ok(TokenConfig { kind, simple_ttl })
    }
}

impl Jwt {
    fn from_options(options: &HashMap<&str, &str>) -> anyhow::Result<Jwt> {
        let method = options
            .get("sign-method")
            .ok_or_else(|| anyhow::anyhow!("jwt: sign-method is required"))?;
        let algorithm: Algorithm = method
            .parse()
            .map_err(|_| anyhow::anyhow!("jwt: unsupported sign-method {method:?}"))?;
        let ttl = options.get("ttl").map(|t| parse_duration(t)).transpose()?;
        let read = |name: &str| -> anyhow::Result<Vec<u8>> {
            let path = options
                .get(name)
                .ok_or_else(|| anyhow::anyhow!("jwt: {name} is required for {method}"))?;
            std::fs::read(path).with_context(|| format!("jwt: reading {name} {path}"))
        };
        let (encoding, decoding) = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                let secret = read("priv-key")?;
                (EncodingKey::from_secret(&secret), DecodingKey::from_secret(&secret))
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => (
                EncodingKey::from_rsa_pem(&read("priv-key")?)?,
                DecodingKey::from_rsa_pem(&read("pub-key")?)?,
            ),
            Algorithm::ES256 | Algorithm::ES384 => (
                EncodingKey::from_ec_pem(&read("priv-key")?)?,
                DecodingKey::from_ec_pem(&read("pub-key")?)?,
            ),
            Algorithm::EdDSA => (
                EncodingKey::from_ed_pem(&read("priv-key")?)?,
                DecodingKey::from_ed_pem(&read("pub-key")?)?,
            ),
        };
        Ok(Jwt {
            algorithm,
            encoding,
            decoding,
            ttl: ttl.unwrap_or(Duration::from_secs(300)),
        })
    }

    /// A signed token for `username`, issued at auth revision `revision`.
    pub fn sign(&self, username: &str, revision: u64) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let claims = Claims {
            username: username.to_string(),
            revision,
            exp: now + self.ttl.as_secs(),
        };
        Ok(jsonwebtoken::encode(
            &Header::new(self.algorithm),
            &claims,
            &self.encoding,
        )?)
    }

    /// The claims of a token this member's key signed and that has not expired.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let mut validation = Validation::new(self.algorithm);
        validation.leeway = 0;
        validation.required_spec_claims = ["exp".to_string()].into();
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .ok()
            .map(|data| data.claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_tokens_expire_and_renew() {
        let mut tokens = SimpleTokens::default();
        let now = Instant::now();
        tokens.assign("t".into(), "alice".into(), now + Duration::from_secs(5));
        assert_eq!(
            tokens.user_of("t", now, Duration::from_secs(5)).as_deref(),
            Some("alice")
        );
        assert_eq!(
            tokens.user_of("t", now + Duration::from_secs(6), Duration::from_secs(5)),
            None
        );
        assert_eq!(tokens.user_of("nope", now, Duration::from_secs(5)), None);
        assert!(new_simple_token(3).ends_with(".3"));
    }

    #[test]
    fn jwt_round_trip_with_a_shared_secret() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("secret");
        std::fs::write(&key, b"0123456789abcdef").unwrap();
        let spec = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", key.display());
        let config = TokenConfig::parse(&spec, Duration::from_secs(300)).unwrap();
        let TokenKind::Jwt(jwt) = config.kind else {
            panic!("jwt expected")
        };
        let token = jwt.sign("alice", 7).unwrap();
        let claims = jwt.verify(&token).unwrap();
        assert_eq!((claims.username.as_str(), claims.revision), ("alice", 7));
        assert!(jwt.verify(&format!("{token}x")).is_none());
        assert!(TokenConfig::parse("jwt,sign-method=RS256", Duration::ZERO).is_err());
        assert!(TokenConfig::parse("magic", Duration::ZERO).is_err());
    }
}
