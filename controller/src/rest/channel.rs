//! The channel protocol of exec over WebSocket (`v4.channel.k8s.io`, `v5.channel.k8s.io`;
//! apimachinery `pkg/util/remotecommand`, `wsstream`, facts 7.2): every binary message is one
//! byte of channel (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, 255 close in v5) and its
//! payload. Pure: the session in [`super::stream`] moves the bytes.

use super::request::query_param;
use super::status::ApiError;
use serde_json::json;

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
/// v5 only: `[255, n]` closes channel n (a client's stdin at its EOF).
pub const CLOSE: u8 = 255;

/// The subprotocols served, the server's preference first: kubectl offers only v5, the Python
/// client v5 then v4 (older ones v4 alone).
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// What a client sent in one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromClient {
    Stdin(Vec<u8>),
    /// Terminal sizes, (columns, rows), in the order sent.
    Resize(Vec<(u32, u32)>),
    /// The client's stdin ended (v5).
    CloseStdin,
    /// Nothing to act on (an empty message, another channel, a close of another channel).
    Nothing,
}

/// Reads a client's message (binary, or text as the Python client sends stdin).
pub fn from_client(message: &[u8], v5: bool) -> FromClient {
    let Some((&channel, payload)) = message.split_first() else { return FromClient::Nothing };
    match channel {
        STDIN if !payload.is_empty() => FromClient::Stdin(payload.to_vec()),
        RESIZE => {
            // Go's TerminalSize has no JSON tags (Width, Height); client-go's json.Encoder ends
            // each with a newline, and several may come in one message.
            let sizes = serde_json::Deserializer::from_slice(payload)
                .into_iter::<serde_json::Value>()
                .map_while(Result::ok)
                .filter_map(|v| Some((u32::try_from(v["Width"].as_u64()?).ok()?, u32::try_from(v["Height"].as_u64()?).ok()?)))
                .collect();
            FromClient::Resize(sizes)
        }
        CLOSE if v5 && payload == [STDIN] => FromClient::CloseStdin,
        _ => FromClient::Nothing,
    }
}

/// A message to the client on `channel`.
pub fn to_client(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(data.len() + 1);
    message.push(channel);
    message.extend_from_slice(data);
    message
}

/// The Status the kubelet writes on the error channel at the end: Success for exit 0, else
/// NonZeroExitCode with the code as the first cause (client-go and the Python client read it
/// there). Without TypeMeta, as the kubelet marshals it.
pub fn exit_status(code: i32) -> String {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"}).to_string();
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
    .to_string()
}

/// The Status of a failure that is not the command's (the agent could not run it).
pub fn failure_status(message: &str) -> String {
    json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError", "code": 500}).to_string()
}

/// `PodExecOptions` (and `PodAttachOptions`) from the query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub command: Vec<String>,
    pub container: String,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecOptions {
    pub fn parse(query: &[(String, String)]) -> Result<ExecOptions, ApiError> {
        let flag = |name: &str| super::watch::parse_bool(query, name).map(Option::unwrap_or_default);
        let options = ExecOptions {
            command: query.iter().filter(|(k, _)| k == "command").map(|(_, v)| v.clone()).collect(),
            container: query_param(query, "container").unwrap_or("").to_string(),
            stdin: flag("stdin")?,
            stdout: flag("stdout")?,
            stderr: flag("stderr")?,
            tty: flag("tty")?,
        };
        // kube-apiserver's checks of a remote command (pkg/registry/core/pod/rest/subresources.go).
        if !options.stdin && !options.stdout && !options.stderr {
            return Err(ApiError::bad_request("you must specify at least 1 of stdin, stdout, stderr"));
        }
        if options.tty && options.stderr {
            return Err(ApiError::bad_request("stdout and stderr streams must be merged into one when tty is set (stderr must be false)"));
        }
        Ok(options)
    }

    /// The channel of the empty message a server opens with: the lowest it will write to.
    pub fn first_channel(&self) -> u8 {
        if self.stdout {
            STDOUT
        } else if self.stderr {
            STDERR
        } else {
            ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages() {
        assert_eq!(from_client(b"\x00hi\n", true), FromClient::Stdin(b"hi\n".to_vec()));
        assert_eq!(from_client(b"\x00", true), FromClient::Nothing);
        assert_eq!(from_client(b"", true), FromClient::Nothing);
        assert_eq!(
            from_client(b"\x04{\"Width\":80,\"Height\":24}\n{\"Width\":100,\"Height\":30}\n", true),
            FromClient::Resize(vec![(80, 24), (100, 30)])
        );
        assert_eq!(from_client(&[255, 0], true), FromClient::CloseStdin);
        assert_eq!(from_client(&[255, 0], false), FromClient::Nothing);
        assert_eq!(from_client(&[255, 1], true), FromClient::Nothing);
        assert_eq!(to_client(STDOUT, b"out"), b"\x01out");
    }

    #[test]
    fn statuses() {
        assert_eq!(exit_status(0), r#"{"metadata":{},"status":"Success"}"#);
        let v: serde_json::Value = serde_json::from_str(&exit_status(3)).unwrap();
        assert_eq!((v["reason"].as_str(), v["details"]["causes"][0]["reason"].as_str()), (Some("NonZeroExitCode"), Some("ExitCode")));
        assert_eq!(v["details"]["causes"][0]["message"], "3");
    }

    #[test]
    fn options() {
        let q = super::super::request::query_pairs;
        let o = ExecOptions::parse(&q("command=sh&command=-c&command=exit+3&container=a&stdin=true&stdout=1&tty=True")).unwrap();
        assert_eq!(
            o,
            ExecOptions {
                command: vec!["sh".into(), "-c".into(), "exit 3".into()],
                container: "a".into(),
                stdin: true,
                stdout: true,
                stderr: false,
                tty: true
            }
        );
        assert_eq!(o.first_channel(), STDOUT);
        assert_eq!(ExecOptions::parse(&q("command=ls")).unwrap_err().message, "you must specify at least 1 of stdin, stdout, stderr");
        assert_eq!(ExecOptions::parse(&q("command=ls&stdout=yes")).unwrap_err().code, 400);
        assert_eq!(ExecOptions::parse(&q("command=ls&stdin=1")).unwrap().first_channel(), ERROR);
    }
}
