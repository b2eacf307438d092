//! `emu token create|list|delete` (issue 18): kubeadm's bootstrap tokens, with which another
//! machine joins the cluster. A token is a Secret `kube-system/bootstrap-token-<id>` made, listed
//! and deleted through the controller's API; what the Secret holds and how the list reads are
//! [`emu_logic::bootstrap`]'s. Tokens go to stdout only, never to a log.

use crate::context::{api_error, Ctx};
use crate::verbs::list;
use crate::Globals;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use emu_logic::bootstrap::{self, Token};
use emu_proto::{ApplyRequest, DeleteRequest, Object, ObjectRef};

#[derive(Args, Debug)]
pub struct TokenArgs {
    #[command(subcommand)]
    what: TokenCommand,
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a bootstrap token and print it (only the token, as kubeadm does).
    Create {
        /// How long the token is valid (Go's duration syntax: 24h, 30m, 1h30m); 0: it never expires.
        #[arg(long, default_value = "24h", value_name = "DURATION", allow_hyphen_values = true)]
        ttl: String,
        /// A human friendly description of how this token is used (shown by `emu token list`).
        #[arg(long, value_name = "TEXT")]
        description: Option<String>,
        /// Print the whole `emu join` command another machine runs with this token, instead of
        /// the token alone.
        #[arg(long)]
        print_join_command: bool,
        /// The token to create, of the form [a-z0-9]{6}.[a-z0-9]{16} (default: a random one).
        token: Option<String>,
    },
    /// List the bootstrap tokens (kubeadm's table: TOKEN TTL EXPIRES USAGES DESCRIPTION EXTRA GROUPS).
    List,
    /// Delete bootstrap tokens, given whole or by id ([a-z0-9]{6}): they stop working at once.
    Delete {
        /// Tokens (abcdef.0123456789abcdef) or token ids (abcdef).
        #[arg(required = true, value_name = "TOKEN|ID")]
        tokens: Vec<String>,
    },
}

pub fn token(a: TokenArgs, g: &Globals) -> anyhow::Result<i32> {
    match a.what {
        TokenCommand::Create { ttl, description, print_join_command, token } => {
            create(&ttl, description.as_deref().unwrap_or(""), print_join_command, token.as_deref(), g)
        }
        TokenCommand::List => list_tokens(g),
        TokenCommand::Delete { tokens } => delete(&tokens, g),
    }
}

/// A random token, from the system's cryptographic source.
pub(crate) fn random_token() -> anyhow::Result<Token> {
    use ring::rand::SecureRandom as _;
    let rng = ring::rand::SystemRandom::new();
    loop {
        let mut bytes = [0u8; 64];
        rng.fill(&mut bytes).map_err(|_| anyhow::anyhow!("the system's random source failed"))?;
        if let Ok(token) = Token::generate(&bytes) {
            return Ok(token);
        }
    }
}

/// The command another machine runs to join: kubeadm's shape, with emu's name.
fn join_command(endpoint: &str, token: &Token, ca_hash: &str) -> String {
    format!("emu join {endpoint} --token {} --discovery-token-ca-cert-hash {ca_hash}", token.reveal())
}

/// Where machines join and the CA hash they check, from the controller; an error that says what
/// to do when the control plane has no join listener.
fn join_target(ctx: &Ctx) -> anyhow::Result<(String, String)> {
    let mut client = ctx.client.clone();
    let info = ctx.block_on(client.cluster_info(emu_proto::ClusterInfoRequest {})).map_err(api_error)?.into_inner();
    if info.join_endpoint.is_empty() {
        anyhow::bail!(
            "--print-join-command: the control plane of cluster {:?} has no join listener yet, so no machine can join it: \
             recreate it with `emu up --advertise-address ADDRESS` (an address of this machine the others reach); no token was created",
            ctx.cluster
        );
    }
    if info.ca_certificate.is_empty() {
        anyhow::bail!(
            "--print-join-command: the controller of cluster {:?} sent no cluster CA (its HTTPS endpoint did not start; see controller.log); no token was created",
            ctx.cluster
        );
    }
    let hash = emu_proto::cahash::ca_cert_hash_pem(&info.ca_certificate).context("the cluster CA the controller sent")?;
    Ok((info.join_endpoint, hash))
}

fn create(ttl: &str, description: &str, print_join_command: bool, given: Option<&str>, g: &Globals) -> anyhow::Result<i32> {
    // Everything the user gave is checked before anything is asked of the cluster.
    let ttl = bootstrap::parse_ttl(ttl).map_err(|e| anyhow::anyhow!("invalid --ttl: {e}"))?;
    let token = match given {
        Some(text) => Token::parse(text).map_err(|e| anyhow::anyhow!("invalid TOKEN argument: {e}; or leave it out for a random one"))?,
        None => random_token()?,
    };
    let ctx = Ctx::open(g)?;
    let join = print_join_command.then(|| join_target(&ctx)).transpose()?;
    let expires = ttl.map(|seconds| emu_api::time::now() + seconds);
    let mut client = ctx.client.clone();
    let secret = Object { json: bootstrap::secret(&token, expires, description).to_string() };
    match ctx.block_on(client.apply(ApplyRequest { objects: vec![secret], create_only: true, dry_run: false })) {
        Ok(_) => {}
        Err(s) if s.code() == tonic::Code::AlreadyExists => anyhow::bail!(
            "a token with id {:?} already exists: give another token, or delete this one first with `emu token delete {}`",
            token.id(),
            token.id()
        ),
        Err(s) => return Err(api_error(s).context(format!("creating bootstrap token {:?}", token.id()))),
    }
    match join {
        Some((endpoint, hash)) => println!("{}", join_command(&endpoint, &token, &hash)),
        None => println!("{}", token.reveal()),
    }
    Ok(0)
}

fn list_tokens(g: &Globals) -> anyhow::Result<i32> {
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    let secrets = ctx.block_on(list(&mut client, "Secret", bootstrap::NAMESPACE, ""))?;
    let listed = bootstrap::list(&secrets, emu_api::time::now());
    for warning in &listed.warnings {
        eprintln!("{warning}");
    }
    print!("{}", listed.table);
    Ok(0)
}

fn delete(given: &[String], g: &Globals) -> anyhow::Result<i32> {
    // All names are checked before any token is deleted.
    let ids = given
        .iter()
        .enumerate()
        .map(|(i, text)| bootstrap::parse_id_or_token(text).map_err(|e| anyhow::anyhow!("invalid argument {}: {e}", i + 1)))
        .collect::<anyhow::Result<Vec<String>>>()?;
    let ctx = Ctx::open(g)?;
    let mut client = ctx.client.clone();
    for id in ids {
        let r = ObjectRef { kind: "Secret".into(), namespace: bootstrap::NAMESPACE.into(), name: bootstrap::secret_name(&id) };
        match ctx.block_on(client.delete(DeleteRequest { r#ref: Some(r), force: false, grace_period_seconds: -1 })) {
            Ok(_) => println!("bootstrap token {id:?} deleted"),
            Err(s) if s.code() == tonic::Code::NotFound => {
                anyhow::bail!("failed to delete bootstrap token {id:?}: there is no such token (`emu token list` shows those there are)")
            }
            Err(s) => return Err(api_error(s).context(format!("failed to delete bootstrap token {id:?}"))),
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_join_command_is_kubeadms_shape() {
        let token = Token::parse("abcdef.0123456789abcdef").unwrap();
        assert_eq!(
            join_command("192.0.2.10:6444", &token, "sha256:00ff"),
            "emu join 192.0.2.10:6444 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:00ff"
        );
    }

    #[test]
    fn random_tokens_differ_and_parse() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(Token::parse(&a.reveal()), Ok(a));
    }
}
