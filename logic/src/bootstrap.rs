//! Bootstrap tokens (issue 18), as kubeadm makes them and kube-apiserver checks them: a token
//! `[a-z0-9]{6}.[a-z0-9]{16}` (a public id, a dot, a secret) kept as Secret
//! `kube-system/bootstrap-token-<id>` of type `bootstrap.kubernetes.io/token`. A machine joining
//! the cluster presents it; it authenticates as `system:bootstrap:<id>` in
//! `system:bootstrappers` and the token's extra groups, until it expires or its Secret is deleted.
//!
//! Pure: the caller supplies the random bytes, the clock and the Secrets. The token's secret part
//! never appears in a message or a `Debug` output of this module ([`Token::reveal`] is the one
//! way to get it, for the user who asked for the token).

use base64::Engine as _;
use serde_json::{json, Value};

/// Where bootstrap tokens' Secrets live.
pub const NAMESPACE: &str = "kube-system";
/// A token's Secret is named this prefix and the token's id.
pub const SECRET_PREFIX: &str = "bootstrap-token-";
/// The Secret type of bootstrap tokens.
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
/// A token's form, as kubeadm names it in its messages.
pub const TOKEN_FORMAT: &str = "[a-z0-9]{6}.[a-z0-9]{16}";
/// A token id's form.
pub const ID_FORMAT: &str = "[a-z0-9]{6}";
/// The group of every bootstrap token's user.
pub const BOOTSTRAPPERS_GROUP: &str = "system:bootstrappers";
/// The extra group kubeadm gives its tokens (`kubeadm token create --groups`' default).
pub const DEFAULT_NODE_TOKEN_GROUP: &str = "system:bootstrappers:kubeadm:default-node-token";
/// A token's user is this prefix and its id.
pub const USER_PREFIX: &str = "system:bootstrap:";
/// kubeadm's default `--ttl` (24h).
pub const DEFAULT_TTL_SECONDS: i64 = 24 * 3600;

/// The Secret's data keys (kubeadm's `bootstrapapi` constants).
pub const KEY_TOKEN_ID: &str = "token-id";
pub const KEY_TOKEN_SECRET: &str = "token-secret";
pub const KEY_EXPIRATION: &str = "expiration";
pub const KEY_DESCRIPTION: &str = "description";
pub const KEY_EXTRA_GROUPS: &str = "auth-extra-groups";
pub const USAGE_PREFIX: &str = "usage-bootstrap-";
pub const KEY_USAGE_AUTHENTICATION: &str = "usage-bootstrap-authentication";
pub const KEY_USAGE_SIGNING: &str = "usage-bootstrap-signing";

/// The characters of a token, as kubeadm draws them.
const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// A bootstrap token, parsed. `Debug` shows only the id.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    id: String,
    secret: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("id", &self.id).field("secret", &"<redacted>").finish()
    }
}

/// Text that is not a token (or token id) of the expected form. The text itself is never quoted:
/// it may be a mistyped secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error(
        "not a bootstrap token: a token has the form {TOKEN_FORMAT} (6 lowercase letters or digits, a dot, 16 more), as `emu token create` prints it"
    )]
    Token,
    #[error(
        "neither a bootstrap token ({TOKEN_FORMAT}) nor a token id ({ID_FORMAT}): give the token `emu token create` printed or the id `emu token list` shows"
    )]
    TokenOrId,
}

/// Too few random bytes to draw a token from (see [`Token::generate`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not enough random bytes to draw a bootstrap token from: give at least 64")]
pub struct NotEnoughRandom;

fn is_token_chars(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Whether `s` is a token id (`[a-z0-9]{6}`).
pub fn is_token_id(s: &str) -> bool {
    is_token_chars(s, ID_LEN)
}

impl Token {
    /// Parses `id.secret`, exactly `[a-z0-9]{6}.[a-z0-9]{16}` (no surrounding space).
    pub fn parse(text: &str) -> Result<Token, FormatError> {
        let (id, secret) = text.split_once('.').ok_or(FormatError::Token)?;
        if !is_token_chars(id, ID_LEN) || !is_token_chars(secret, SECRET_LEN) {
            return Err(FormatError::Token);
        }
        Ok(Token { id: id.to_string(), secret: secret.to_string() })
    }

    /// A token drawn from `random` (give 64 bytes of a cryptographic source): each character
    /// takes one byte, uniformly over the 36 characters (bytes of 252 and above, where 36 does
    /// not divide 256 evenly, are skipped, as Go's `rand.Int` rejects them). Fails only if too
    /// many bytes were skipped, which 64 random bytes make vanishingly unlikely; ask again then.
    pub fn generate(random: &[u8]) -> Result<Token, NotEnoughRandom> {
        let limit = (256 / ALPHABET.len() * ALPHABET.len()) as u8; // 252
        let chars: String = random
            .iter()
            .filter(|&&b| b < limit)
            .map(|&b| ALPHABET[b as usize % ALPHABET.len()] as char)
            .take(ID_LEN + SECRET_LEN)
            .collect();
        if chars.len() < ID_LEN + SECRET_LEN {
            return Err(NotEnoughRandom);
        }
        let (id, secret) = chars.split_at(ID_LEN);
        Ok(Token { id: id.to_string(), secret: secret.to_string() })
    }

    /// The public part, which names the Secret and the user.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The whole token, `id.secret`: only for the user who asked for it (stdout of `emu token
    /// create`, the join command). Never log it.
    pub fn reveal(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The name of the token's Secret in `kube-system`.
    pub fn secret_name(&self) -> String {
        secret_name(&self.id)
    }
}

/// The name of the Secret of the token with id `id`.
pub fn secret_name(id: &str) -> String {
    format!("{SECRET_PREFIX}{id}")
}

/// The id a user names a token by, for `emu token delete`: a token id or a whole token, as
/// kubeadm accepts either.
pub fn parse_id_or_token(text: &str) -> Result<String, FormatError> {
    if is_token_id(text) {
        return Ok(text.to_string());
    }
    Token::parse(text).map(|t| t.id).map_err(|_| FormatError::TokenOrId)
}

/// The Secret kubeadm stores for `token` (the default usages, authentication and signing, and
/// kubeadm's default extra group), expiring at `expires` (unix seconds; None: never). The data
/// is base64, as Secrets hold it; `description` is left out when empty, as kubeadm does.
pub fn secret(token: &Token, expires: Option<i64>, description: &str) -> Value {
    let b64 = |text: &str| Value::String(base64::engine::general_purpose::STANDARD.encode(text));
    let mut data = serde_json::Map::new();
    data.insert(KEY_TOKEN_ID.into(), b64(&token.id));
    data.insert(KEY_TOKEN_SECRET.into(), b64(&token.secret));
    if !description.is_empty() {
        data.insert(KEY_DESCRIPTION.into(), b64(description));
    }
    if let Some(at) = expires {
        data.insert(KEY_EXPIRATION.into(), b64(&emu_api::time::rfc3339(at)));
    }
    data.insert(KEY_USAGE_AUTHENTICATION.into(), b64("true"));
    data.insert(KEY_USAGE_SIGNING.into(), b64("true"));
    data.insert(KEY_EXTRA_GROUPS.into(), b64(DEFAULT_NODE_TOKEN_GROUP));
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": token.secret_name(), "namespace": NAMESPACE},
        "type": SECRET_TYPE,
        "data": data,
    })
}

/// Who a valid token authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapUser {
    /// The token's id (public).
    pub id: String,
    /// `system:bootstrap:<id>`.
    pub user: String,
    /// `system:bootstrappers`, then the token's extra groups.
    pub groups: Vec<String>,
}

/// Why a token was refused. Every message names the token by its id only, says what is wrong and
/// what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Malformed(FormatError),
    #[error(
        "bootstrap token \"{id}\" is not known to the cluster (deleted, expired and cleaned up, or never made): make a new one with `emu token create` on the control plane"
    )]
    Unknown { id: String },
    #[error("bootstrap token \"{id}\" is being deleted: make a new one with `emu token create` on the control plane")]
    Deleted { id: String },
    #[error(
        "bootstrap token \"{id}\": the secret part (after the dot) is wrong: copy the whole token again from `emu token create` or `emu token list` on the control plane"
    )]
    WrongSecret { id: String },
    #[error(
        "bootstrap token \"{id}\" expired at {expired_at}: make a new one with `emu token create` on the control plane (`--ttl 0` for one that never expires)"
    )]
    Expired { id: String, expired_at: String },
    #[error(
        "bootstrap token \"{id}\" is not for authentication (its Secret lacks {KEY_USAGE_AUTHENTICATION}: \"true\"): make one with `emu token create` on the control plane"
    )]
    NotForAuthentication { id: String },
    #[error(
        "bootstrap token \"{id}\": its Secret {NAMESPACE}/{SECRET_PREFIX}{id} is invalid ({reason}): delete it with `emu token delete {id}` and make a new one with `emu token create`"
    )]
    Invalid { id: String, reason: String },
}

/// A Secret's field as text: a `data` key base64-decoded (None when absent or not base64/UTF-8).
fn data(secret: &Value, key: &str) -> Option<String> {
    let text = secret.get("data")?.get(key)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    String::from_utf8(bytes).ok()
}

fn secret_type(secret: &Value) -> &str {
    secret.get("type").and_then(Value::as_str).unwrap_or("")
}

/// Equal bytes, in time that depends only on the lengths (a secret's length is no secret).
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    a.len() == b.len() && std::hint::black_box(diff) == 0
}

/// `auth-extra-groups` entries must match `\Asystem:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]\z`
/// (kube-apiserver refuses a token with any other).
fn valid_extra_group(group: &str) -> bool {
    let Some(rest) = group.strip_prefix("system:bootstrappers:") else { return false };
    !rest.is_empty()
        && rest.len() <= 256
        && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b':' || b == b'-')
        && rest.bytes().last().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn extra_groups(secret: &Value) -> Vec<String> {
    data(secret, KEY_EXTRA_GROUPS).map(|g| g.split(',').filter(|g| !g.is_empty()).map(str::to_string).collect()).unwrap_or_default()
}

/// Whether `token` authenticates with `secret` (its Secret) at `now_unix`, as kube-apiserver's
/// bootstrap token authenticator decides, in its order: a Secret being deleted or not of the
/// bootstrap type is refused, then the secret part is compared (in constant time) before
/// anything else about the token is told, then its id, expiration (past it: refused; one that
/// does not parse counts as past), usage for authentication and extra groups.
pub fn check(secret: &Value, token: &str, now_unix: i64) -> Result<BootstrapUser, Refusal> {
    let token = Token::parse(token).map_err(Refusal::Malformed)?;
    let id = token.id.clone();
    if secret.get("metadata").and_then(|m| m.get("deletionTimestamp")).is_some_and(|t| !t.is_null()) {
        return Err(Refusal::Deleted { id });
    }
    if secret_type(secret) != SECRET_TYPE {
        return Err(Refusal::Invalid { id, reason: format!("type {:?}, not {SECRET_TYPE:?}", secret_type(secret)) });
    }
    let stored = data(secret, KEY_TOKEN_SECRET).unwrap_or_default();
    if !same_secret(stored.as_bytes(), token.secret.as_bytes()) {
        return Err(Refusal::WrongSecret { id });
    }
    if data(secret, KEY_TOKEN_ID).as_deref() != Some(id.as_str()) {
        return Err(Refusal::Invalid { id, reason: format!("its {KEY_TOKEN_ID} is not the token's id") });
    }
    if let Some(text) = data(secret, KEY_EXPIRATION) {
        match emu_api::time::parse_rfc3339(&text) {
            Some(at) if now_unix <= at => {}
            Some(at) => return Err(Refusal::Expired { id, expired_at: emu_api::time::rfc3339(at) }),
            None => return Err(Refusal::Expired { id, expired_at: format!("{text:?} (not an RFC 3339 time)") }),
        }
    }
    if data(secret, KEY_USAGE_AUTHENTICATION).as_deref() != Some("true") {
        return Err(Refusal::NotForAuthentication { id });
    }
    let extra = extra_groups(secret);
    if let Some(bad) = extra.iter().find(|g| !valid_extra_group(g)) {
        return Err(Refusal::Invalid {
            id,
            reason: format!("{KEY_EXTRA_GROUPS} {bad:?} does not match system:bootstrappers:[a-z0-9:-]{{0,255}}[a-z0-9]"),
        });
    }
    let mut groups = vec![BOOTSTRAPPERS_GROUP.to_string()];
    groups.extend(extra);
    Ok(BootstrapUser { user: format!("{USER_PREFIX}{id}"), id, groups })
}

/// Whether kube-controller-manager's tokencleaner deletes this Secret at `now_unix`: a bootstrap
/// token's whose expiration has come. One without an expiration, or with one that does not parse,
/// is kept (the authenticator refuses the latter anyway).
pub fn cleaned_up(secret: &Value, now_unix: i64) -> bool {
    secret_type(secret) == SECRET_TYPE
        && data(secret, KEY_EXPIRATION).and_then(|t| emu_api::time::parse_rfc3339(&t)).is_some_and(|at| now_unix >= at)
}

/// A token as `kubeadm token list` reads it from its Secret.
#[derive(Clone, PartialEq, Eq)]
struct Listed {
    token: String,
    expires: Option<i64>,
    usages: Vec<String>,
    description: String,
    groups: Vec<String>,
}

/// kubeadm's `BootstrapTokenFromSecret`: the token of a Secret, or why it has none.
fn listed(secret: &Value) -> Result<Listed, String> {
    let name = secret.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
    let id = data(secret, KEY_TOKEN_ID)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| format!("bootstrap token Secret {name} has no {KEY_TOKEN_ID}"))?;
    if name != secret_name(&id) {
        return Err(format!("bootstrap token Secret {name} is not named {SECRET_PREFIX}(token-id): expected {}", secret_name(&id)));
    }
    let secret_part = data(secret, KEY_TOKEN_SECRET)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("bootstrap token Secret {name} has no {KEY_TOKEN_SECRET}"))?;
    let token = Token::parse(&format!("{id}.{secret_part}"))
        .map_err(|_| format!("bootstrap token Secret {name} does not hold a token of the form {TOKEN_FORMAT}"))?;
    let expires = match data(secret, KEY_EXPIRATION) {
        None => None,
        Some(text) => Some(
            emu_api::time::parse_rfc3339(&text)
                .ok_or_else(|| format!("bootstrap token Secret {name}: its {KEY_EXPIRATION} {text:?} is not an RFC 3339 time"))?,
        ),
    };
    let mut usages: Vec<String> = secret
        .get("data")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix(USAGE_PREFIX).filter(|_| data(secret, k).as_deref() == Some("true")).map(str::to_string))
        .collect();
    usages.sort();
    Ok(Listed {
        token: token.reveal(),
        expires,
        usages,
        description: data(secret, KEY_DESCRIPTION).unwrap_or_default(),
        groups: extra_groups(secret),
    })
}

/// apimachinery's `ShortHumanDuration`: `45s`, `10m`, `23h`, `6d`, `2y`; `0s` up to a second in
/// the past, `<invalid>` beyond.
pub fn short_human_duration(seconds: i64) -> String {
    match seconds {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 24 * 3600 => format!("{}h", s / 3600),
        s if s < 365 * 24 * 3600 => format!("{}d", s / (24 * 3600)),
        s => format!("{}y", s / (365 * 24 * 3600)),
    }
}

/// What `kubeadm token list` prints for these Secrets (any of `kube-system`; those not of the
/// bootstrap type are passed over): the table, and a warning for each bootstrap Secret that
/// holds no valid token (kubeadm writes them to stderr and goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenList {
    /// Nothing at all when there is no token (kubeadm prints the header with the first row).
    pub table: String,
    pub warnings: Vec<String>,
}

/// kubeadm's text printer: each token is printed through its own tabwriter (min width 10,
/// padding 3, spaces), the header with the first; TTL, USAGES and DESCRIPTION are padded to 9, 22
/// and 56 characters beforehand so that the rows line up anyway.
pub fn list(secrets: &[Value], now_unix: i64) -> TokenList {
    let mut table = String::new();
    let mut warnings = Vec::new();
    let mut header = true;
    for secret in secrets.iter().filter(|s| secret_type(s) == SECRET_TYPE) {
        let t = match listed(secret) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(e);
                continue;
            }
        };
        let none = |s: String| if s.is_empty() { "<none>".to_string() } else { s };
        let (ttl, expires) = match t.expires {
            // kubeadm measures from a now with sub-second precision, against an expiration of
            // whole seconds: a token made this second with 24h shows 23h. From a whole-second
            // now, the time left is a second less.
            Some(at) => (short_human_duration(at - now_unix - 1), emu_api::time::rfc3339(at)),
            None => ("<forever>".to_string(), "<never>".to_string()),
        };
        let row = [
            t.token,
            format!("{ttl:<9}"),
            expires,
            format!("{:<22}", none(t.usages.join(","))),
            format!("{:<56}", none(t.description)),
            none(t.groups.join(",")),
        ];
        let mut lines: Vec<[String; 6]> = Vec::new();
        if header {
            lines.push(["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"].map(str::to_string));
            header = false;
        }
        lines.push(row);
        table.push_str(&tabwrite(&lines));
    }
    TokenList { table, warnings }
}

/// Go's tabwriter with kubeadm's settings (min width 10, padding 3, space padding) over lines of
/// six cells, the last not tab-terminated (so not aligned).
fn tabwrite(lines: &[[String; 6]]) -> String {
    let width = |c: usize| lines.iter().map(|l| l[c].chars().count() + 3).max().unwrap_or(0).max(10);
    let widths: Vec<usize> = (0..5).map(width).collect();
    let mut out = String::new();
    for line in lines {
        for (cell, w) in line.iter().zip(&widths) {
            out.push_str(cell);
            out.push_str(&" ".repeat(w - cell.chars().count()));
        }
        out.push_str(&line[5]);
        out.push('\n');
    }
    out
}

/// A `--ttl` in Go's duration syntax (`24h`, `1h30m`, `90s`, `1.5h`; units h, m, s, ms, us, µs,
/// ns), in whole seconds; `0` means the token never expires (None).
pub fn parse_ttl(text: &str) -> Result<Option<i64>, String> {
    let bad = || format!("{text:?} is not a duration: use e.g. 24h, 30m, 1h30m or 90s, or 0 for a token that never expires");
    if text == "0" {
        return Ok(None);
    }
    if text.starts_with('-') {
        return Err(format!("{text:?} is negative: give a positive duration such as 24h, or 0 for a token that never expires"));
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let number = &rest[..end];
        if number.is_empty() || number == "." {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        rest = &rest[end..];
        let units = [("ns", 1.0), ("us", 1e3), ("µs", 1e3), ("μs", 1e3), ("ms", 1e6), ("s", 1e9), ("m", 60e9), ("h", 3600e9)];
        // Longest unit first, so that `ms` is not read as `m`.
        let (unit, scale) = units.iter().filter(|(u, _)| rest.starts_with(u)).max_by_key(|(u, _)| u.len()).ok_or_else(bad)?;
        nanos += value * scale;
        rest = &rest[unit.len()..];
    }
    if nanos == 0.0 {
        return Ok(None);
    }
    let seconds = (nanos / 1e9).floor();
    if seconds < 1.0 {
        return Err(format!("{text:?} is shorter than a second: give at least 1s, or 0 for a token that never expires"));
    }
    if seconds > 100.0 * 365.0 * 24.0 * 3600.0 {
        return Err(format!("{text:?} is longer than a hundred years: give a shorter duration, or 0 for a token that never expires"));
    }
    Ok(Some(seconds as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000; // 2026-11-29T...
    const TOKEN: &str = "abcdef.0123456789abcdef";

    fn token() -> Token {
        Token::parse(TOKEN).unwrap()
    }

    fn stored(expires: Option<i64>) -> Value {
        secret(&token(), expires, "")
    }

    /// The Secret with one data key set to `value` (base64-encoded here), or removed (None).
    fn with(mut s: Value, key: &str, value: Option<&str>) -> Value {
        let data = s["data"].as_object_mut().unwrap();
        match value {
            Some(v) => data.insert(key.into(), json!(base64::engine::general_purpose::STANDARD.encode(v))),
            None => data.remove(key),
        };
        s
    }

    #[test]
    fn tokens_parse_only_in_kubeadms_form() {
        let t = token();
        assert_eq!((t.id(), t.reveal().as_str(), t.secret_name().as_str()), ("abcdef", TOKEN, "bootstrap-token-abcdef"));
        for bad in [
            "",
            "abcdef",
            "abcdef.",
            "abcdef0123456789abcdef",
            "abcde.0123456789abcdefg",
            "abcdef.0123456789abcde",
            "abcdef.0123456789abcdef0",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789ABCDEF",
            " abcdef.0123456789abcdef",
            "abcdef.0123456789abcdef\n",
            "abcdef:0123456789abcdef",
            "abcdef.0123456789abcd.f",
            "abcdéf.0123456789abcdef",
        ] {
            assert_eq!(Token::parse(bad), Err(FormatError::Token), "{bad:?}");
        }
        let message = FormatError::Token.to_string();
        assert!(message.contains("[a-z0-9]{6}.[a-z0-9]{16}"), "{message}");
        // Debug never shows the secret.
        let debug = format!("{t:?}");
        assert!(debug.contains("abcdef") && !debug.contains("0123456789abcdef"), "{debug}");
    }

    #[test]
    fn delete_takes_an_id_or_a_whole_token() {
        assert_eq!(parse_id_or_token("abcdef").as_deref(), Ok("abcdef"));
        assert_eq!(parse_id_or_token(TOKEN).as_deref(), Ok("abcdef"));
        for bad in ["abcde", "abcdefg", "ABCDEF", "abcdef.0123", "bootstrap-token-abcdef"] {
            assert_eq!(parse_id_or_token(bad), Err(FormatError::TokenOrId), "{bad:?}");
        }
        // The message names both forms and never repeats what was given.
        let message = parse_id_or_token("abcdef.0123456789abcdeX").unwrap_err().to_string();
        assert!(message.contains(TOKEN_FORMAT) && message.contains(ID_FORMAT) && !message.contains("0123456789abcde"), "{message}");
    }

    #[test]
    fn tokens_are_drawn_uniformly_from_the_random_bytes() {
        let bytes: Vec<u8> = (0..22).collect();
        let t = Token::generate(&bytes).unwrap();
        assert_eq!(t.reveal(), "012345.6789abcdefghijkl");
        // Byte 36 is '0' again (36 % 36); 252..=255 are skipped.
        let mut bytes = vec![252, 253, 254, 255, 36, 71];
        bytes.extend(std::iter::repeat_n(35u8, 20));
        assert_eq!(Token::generate(&bytes).unwrap().reveal(), "0zzzzz.zzzzzzzzzzzzzzzz");
        assert_eq!(Token::generate(&[1; 21]), Err(NotEnoughRandom));
        assert_eq!(Token::generate(&[255; 64]), Err(NotEnoughRandom));
        // Every byte value below 252 is one character, each character 7 of them: uniform.
        let mut counts = [0usize; 36];
        for b in 0u8..252 {
            let t = Token::generate(&[b; 22]).unwrap().reveal();
            let c = t.as_bytes()[0];
            assert!(t.bytes().filter(|&x| x != b'.').all(|x| x == c), "{t}");
            counts[ALPHABET.iter().position(|&a| a == c).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c == 7), "{counts:?}");
        // Whatever comes out parses.
        let t = Token::generate(&[200u8, 13, 99, 7, 250, 251, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]).unwrap();
        assert_eq!(Token::parse(&t.reveal()), Ok(t));
    }

    #[test]
    fn the_secret_is_kubeadms() {
        let s = secret(&token(), Some(NOW), "for node-3");
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        assert_eq!(
            s,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
                "type": "bootstrap.kubernetes.io/token",
                "data": {
                    "token-id": b64("abcdef"),
                    "token-secret": b64("0123456789abcdef"),
                    "description": b64("for node-3"),
                    "expiration": b64(&emu_api::time::rfc3339(NOW)),
                    "usage-bootstrap-authentication": "dHJ1ZQ==",
                    "usage-bootstrap-signing": "dHJ1ZQ==",
                    "auth-extra-groups": b64("system:bootstrappers:kubeadm:default-node-token"),
                }
            })
        );
        assert!(emu_api::time::rfc3339(NOW).ends_with('Z'));
        // No expiration: never expires; no description: no key.
        let s = secret(&token(), None, "");
        assert!(s["data"].get("expiration").is_none() && s["data"].get("description").is_none(), "{s}");
    }

    #[test]
    fn a_valid_token_authenticates_as_its_bootstrap_user() {
        let user = check(&stored(Some(NOW + 60)), TOKEN, NOW).unwrap();
        assert_eq!(
            user,
            BootstrapUser {
                id: "abcdef".into(),
                user: "system:bootstrap:abcdef".into(),
                groups: vec!["system:bootstrappers".into(), "system:bootstrappers:kubeadm:default-node-token".into()],
            }
        );
        // Up to its expiration second, and forever without one.
        assert!(check(&stored(Some(NOW)), TOKEN, NOW).is_ok());
        assert!(check(&stored(None), TOKEN, NOW + 10 * 365 * 86_400).is_ok());
        // No extra groups: only system:bootstrappers.
        let s = with(stored(None), KEY_EXTRA_GROUPS, None);
        assert_eq!(check(&s, TOKEN, NOW).unwrap().groups, ["system:bootstrappers"]);
        let s = with(stored(None), KEY_EXTRA_GROUPS, Some("system:bootstrappers:a,system:bootstrappers:b-1"));
        assert_eq!(check(&s, TOKEN, NOW).unwrap().groups, ["system:bootstrappers", "system:bootstrappers:a", "system:bootstrappers:b-1"]);
    }

    #[test]
    fn refusals_say_why_and_never_show_the_secret() {
        let id = || "abcdef".to_string();
        let cases: Vec<(Value, &str, Refusal)> = vec![
            (stored(None), "abcdef.0123456789abcdee", Refusal::WrongSecret { id: id() }),
            (stored(None), "abcdef.0123456789abcde", Refusal::Malformed(FormatError::Token)),
            (with(stored(None), KEY_TOKEN_SECRET, None), TOKEN, Refusal::WrongSecret { id: id() }),
            (with(stored(None), KEY_TOKEN_SECRET, Some("0123456789abcdef0")), TOKEN, Refusal::WrongSecret { id: id() }),
            (stored(Some(NOW - 1)), TOKEN, Refusal::Expired { id: id(), expired_at: emu_api::time::rfc3339(NOW - 1) }),
            (with(stored(None), KEY_USAGE_AUTHENTICATION, None), TOKEN, Refusal::NotForAuthentication { id: id() }),
            (with(stored(None), KEY_USAGE_AUTHENTICATION, Some("false")), TOKEN, Refusal::NotForAuthentication { id: id() }),
        ];
        for (secret, token, want) in cases {
            let got = check(&secret, token, NOW);
            assert_eq!(got, Err(want.clone()), "{secret}");
            let message = want.to_string();
            assert!(!message.contains("0123456789abcde"), "{message}");
            assert!(message.contains("emu token"), "says what to do: {message}");
        }
        // The expiration that does not parse counts as past, as kube-apiserver has it.
        let e = check(&with(stored(None), KEY_EXPIRATION, Some("tomorrow")), TOKEN, NOW).unwrap_err();
        assert!(matches!(e, Refusal::Expired { .. }), "{e:?}");
        // Being deleted, of another type, another id in the data, bad extra groups.
        let mut deleting = stored(None);
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(check(&deleting, TOKEN, NOW), Err(Refusal::Deleted { id: id() }));
        let mut opaque = stored(None);
        opaque["type"] = json!("Opaque");
        assert!(matches!(check(&opaque, TOKEN, NOW), Err(Refusal::Invalid { .. })));
        assert!(matches!(check(&with(stored(None), KEY_TOKEN_ID, Some("zzzzzz")), TOKEN, NOW), Err(Refusal::Invalid { .. })));
        for groups in ["system:masters", "system:bootstrappers:", "system:bootstrappers:X", "system:bootstrappers:a-"] {
            let e = check(&with(stored(None), KEY_EXTRA_GROUPS, Some(groups)), TOKEN, NOW).unwrap_err();
            assert!(matches!(e, Refusal::Invalid { .. }), "{groups}: {e:?}");
        }
        // The secret is checked before anything else is told: a wrong secret on an expired
        // token, or one not for authentication, is only a wrong secret.
        assert_eq!(check(&stored(Some(NOW - 1)), "abcdef.zzzzzzzzzzzzzzzz", NOW), Err(Refusal::WrongSecret { id: id() }));
        let unknown = Refusal::Unknown { id: id() }.to_string();
        assert!(unknown.contains("\"abcdef\"") && unknown.contains("emu token create"), "{unknown}");
    }

    #[test]
    fn secrets_compare_in_full() {
        assert!(same_secret(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcdeg"));
        assert!(!same_secret(b"x123456789abcdef", b"0123456789abcdef"));
        assert!(!same_secret(b"0123456789abcdef", b"0123456789abcde"));
        assert!(!same_secret(b"", b"0"));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn the_tokencleaner_deletes_tokens_whose_expiration_came() {
        assert!(!cleaned_up(&stored(Some(NOW + 1)), NOW));
        assert!(cleaned_up(&stored(Some(NOW)), NOW));
        assert!(cleaned_up(&stored(Some(NOW - 100)), NOW));
        assert!(!cleaned_up(&stored(None), NOW));
        assert!(!cleaned_up(&with(stored(None), KEY_EXPIRATION, Some("soon")), NOW));
        let mut opaque = stored(Some(NOW - 100));
        opaque["type"] = json!("Opaque");
        assert!(!cleaned_up(&opaque, NOW));
    }

    #[test]
    fn short_human_durations_are_apimachinerys() {
        for (seconds, text) in [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (59, "59s"),
            (60, "1m"),
            (3599, "59m"),
            (3600, "1h"),
            (86_399, "23h"),
            (86_400, "1d"),
            (365 * 86_400 - 1, "364d"),
            (365 * 86_400, "1y"),
        ] {
            assert_eq!(short_human_duration(seconds), text, "{seconds}");
        }
    }

    #[test]
    fn the_list_is_kubeadms_table() {
        let other = secret(&Token::parse("zzzzzz.yyyyyyyyyyyyyyyy").unwrap(), None, "the lab's second machine");
        let mut opaque = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": "kube-system"}, "type": "Opaque", "data": {}});
        opaque["data"]["token-id"] = json!("YWJjZGVm");
        let got = list(&[stored(Some(NOW + 86_400 - 30)), opaque, other], NOW);
        let expires = emu_api::time::rfc3339(NOW + 86_400 - 30);
        let expected = format!(
            "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION                                                EXTRA GROUPS\n\
             abcdef.0123456789abcdef   23h         {expires}   authentication,signing   <none>                                                     system:bootstrappers:kubeadm:default-node-token\n\
             zzzzzz.yyyyyyyyyyyyyyyy   <forever>   <never>   authentication,signing   the lab's second machine                                   system:bootstrappers:kubeadm:default-node-token\n"
        );
        // Each row has a tabwriter of its own, and EXPIRES is not padded beforehand: a token that
        // never expires, below the first row, shifts its row by 13 columns, as in kubeadm.
        assert_eq!(got.table, expected);
        assert!(got.warnings.is_empty(), "{:?}", got.warnings);
        // Made this second with the default TTL: 23h, as kubeadm shows a fresh token.
        let fresh = list(&[stored(Some(NOW + DEFAULT_TTL_SECONDS))], NOW);
        assert!(fresh.table.lines().nth(1).unwrap().starts_with("abcdef.0123456789abcdef   23h   "), "{}", fresh.table);
        // No token: nothing, not even the header (kubeadm prints it with the first row).
        assert_eq!(list(&[], NOW), TokenList { table: String::new(), warnings: vec![] });
    }

    #[test]
    fn the_list_warns_about_broken_token_secrets_and_goes_on() {
        let misnamed = {
            let mut s = stored(None);
            s["metadata"]["name"] = json!("bootstrap-token-zzzzzz");
            s
        };
        let no_secret = with(stored(None), KEY_TOKEN_SECRET, None);
        let bad_expiration = with(stored(None), KEY_EXPIRATION, Some("later"));
        let no_usages = with(with(with(stored(None), KEY_USAGE_SIGNING, None), KEY_USAGE_AUTHENTICATION, None), KEY_EXTRA_GROUPS, None);
        let got = list(&[misnamed, no_secret, bad_expiration, no_usages], NOW);
        assert_eq!(got.warnings.len(), 3, "{:?}", got.warnings);
        assert!(
            got.warnings[0].contains("bootstrap-token-zzzzzz") && got.warnings[0].contains("bootstrap-token-abcdef"),
            "{:?}",
            got.warnings
        );
        assert!(got.warnings[1].contains("token-secret"), "{:?}", got.warnings);
        assert!(got.warnings[2].contains("\"later\""), "{:?}", got.warnings);
        let row = got.table.lines().nth(1).unwrap();
        assert!(row.starts_with("abcdef.0123456789abcdef   <forever>   <never>   <none>                   <none>"), "{row}");
        assert!(row.ends_with("   <none>"), "{row}");
    }

    #[test]
    fn ttls_are_go_durations() {
        for (text, want) in [
            ("24h", Some(86_400)),
            ("24h0m0s", Some(86_400)),
            ("1h30m", Some(5_400)),
            ("90s", Some(90)),
            ("1.5h", Some(5_400)),
            ("2m", Some(120)),
            ("1500ms", Some(1)),
            ("+10s", Some(10)),
            ("0", None),
            ("0s", None),
            ("0h0m", None),
        ] {
            assert_eq!(parse_ttl(text), Ok(want), "{text}");
        }
        for bad in ["", "24", "h", "1d", "abc", "1h 30m", ".h", "-1h", "500ms", "1000000h"] {
            let e = parse_ttl(bad).unwrap_err();
            assert!(e.contains("0 for a token that never expires"), "{bad}: {e}");
        }
    }
}
