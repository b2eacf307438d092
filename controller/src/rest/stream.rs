//! The pod streams of the REST API that a node's agent serves (kube-apiserver hands them to the
//! kubelet): `pods/log` (facts 9.1), `pods/exec` over WebSocket (facts 7.2,
//! [`super::channel`]) and `pods/portforward` as kubectl 1.32 speaks it, SPDY/3.1 inside
//! WebSocket (facts 7.3, [`super::spdy`]). They go through [`crate::relay`], as `emu logs`,
//! `emu exec` and `emu port-forward` do.

use super::channel::{self, ExecOptions, FromClient};
use super::spdy;
use super::status::{ApiError, FieldError};
use super::{request::query_param, Call, Served, Stream, Upgrade, Upgraded};
use crate::relay;
use crate::store::ObjectKey;
use bytes::Bytes;
use emu_api::object;
use emu_proto::{exec_input, exec_output, ExecInput, ExecOutput, ExecStart, LogsRequest, TerminalSize};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// `PodLogOptions` as kubectl and client libraries send them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<i64>,
    pub limit_bytes: Option<i64>,
    pub since_seconds: Option<i64>,
    pub since_time: Option<String>,
    pub timestamps: bool,
}

impl LogOptions {
    /// Reads and checks the options as kube-apiserver does (`ValidatePodLogOptions`: 422 on
    /// kind PodLogOptions named after the pod; a value that is not a number is a 400).
    pub fn parse(query: &[(String, String)], pod: &str) -> Result<LogOptions, ApiError> {
        let int = |name: &str| -> Result<Option<i64>, ApiError> {
            match query_param(query, name) {
                None | Some("") => Ok(None),
                Some(text) => text.parse().map(Some).map_err(|_| {
                    ApiError::bad_request(format!("invalid value {text:?} for {name}: strconv.ParseInt: parsing {text:?}: invalid syntax"))
                }),
            }
        };
        let flag = |name: &str| super::watch::parse_bool(query, name).map(Option::unwrap_or_default);
        let options = LogOptions {
            container: query_param(query, "container").unwrap_or("").to_string(),
            follow: flag("follow")?,
            previous: flag("previous")?,
            tail_lines: int("tailLines")?,
            limit_bytes: int("limitBytes")?,
            since_seconds: int("sinceSeconds")?,
            since_time: query_param(query, "sinceTime").filter(|t| !t.is_empty()).map(str::to_string),
            timestamps: flag("timestamps")?,
        };
        let invalid = |field: &'static str, value: i64, why: &str| FieldError {
            reason: "FieldValueInvalid",
            field,
            body: format!("Invalid value: {value}: {why}"),
        };
        let mut errors = Vec::new();
        if let Some(n) = options.tail_lines.filter(|n| *n < 0) {
            errors.push(invalid("tailLines", n, "must be greater than or equal to 0"));
        }
        if let Some(n) = options.limit_bytes.filter(|n| *n < 1) {
            errors.push(invalid("limitBytes", n, "must be greater than 0"));
        }
        if let Some(n) = options.since_seconds.filter(|n| *n < 1) {
            errors.push(invalid("sinceSeconds", n, "must be greater than 0"));
        }
        if options.since_seconds.is_some() && options.since_time.is_some() {
            errors.push(FieldError {
                reason: "FieldValueForbidden",
                field: "",
                body: "Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
            });
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid("", "PodLogOptions", pod, &errors));
        }
        Ok(options)
    }
}

/// The container a log or a command is about: the one named, or the pod's only one; else
/// kube-apiserver's 400s.
pub fn container_of(pod: &Value, asked: &str) -> Result<String, ApiError> {
    let name = object::name(pod);
    let names = |field: &str| -> Vec<String> {
        object::at(pod, &["spec", field])
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter_map(|c| c["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let (containers, init) = (names("containers"), names("initContainers"));
    if asked.is_empty() {
        return match containers.as_slice() {
            [only] => Ok(only.clone()),
            _ => {
                let mut message = format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
                if !init.is_empty() {
                    message.push_str(&format!(" or one of the init containers: [{}]", init.join(" ")));
                }
                Err(ApiError::bad_request(message))
            }
        };
    }
    if containers.iter().chain(&init).any(|c| c == asked) {
        Ok(asked.to_string())
    } else {
        Err(ApiError::bad_request(format!("container {asked} is not valid for pod {name}")))
    }
}

/// Cuts what a log sends at `limitBytes`: how much of `chunk` may still go, and what is left.
pub fn within_limit(left: &mut Option<u64>, chunk: &[u8]) -> usize {
    match left {
        None => chunk.len(),
        Some(n) => {
            let take = chunk.len().min(usize::try_from(*n).unwrap_or(usize::MAX));
            *n -= take as u64;
            take
        }
    }
}

/// The pod of the request, or kube-apiserver's 404.
fn pod(call: &Call) -> Result<std::sync::Arc<Value>, ApiError> {
    let key = ObjectKey { kind: "Pod".into(), namespace: call.info.namespace.clone(), name: call.info.name.clone() };
    call.shared.store.get_shared(&key).ok_or_else(|| ApiError::not_found("", "pods", &call.info.name))
}

/// `GET pods/NAME/log`: the container's log as text, streamed as the agent sends it; with
/// `timestamps`, `sinceSeconds` or `sinceTime` the agent stamps or selects lines by the times it
/// keeps beside the log.
pub(super) fn logs(call: &Call) -> Result<Served, ApiError> {
    let pod = pod(call)?;
    let options = LogOptions::parse(&call.query, &call.info.name)?;
    let container = container_of(&pod, &options.container)?;
    if object::str_at(&pod, &["spec", "nodeName"]).unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(format!("pod {} does not have a host assigned", call.info.name)));
    }
    let since_unix_nanos = match (&options.since_time, options.since_seconds) {
        (Some(time), _) => {
            let (seconds, nanos) = emu_api::time::parse_rfc3339_nanos(time).ok_or_else(|| {
                ApiError::bad_request(format!("parsing time {time:?} as \"2006-01-02T15:04:05Z07:00\": cannot parse {time:?} as \"2006\""))
            })?;
            seconds * 1_000_000_000 + i64::from(nanos)
        }
        (None, Some(seconds)) => (call.now - seconds) * 1_000_000_000,
        (None, None) => 0,
    };
    let request = LogsRequest {
        namespace: call.info.namespace.clone(),
        pod: call.info.name.clone(),
        container: container.clone(),
        pod_uid: String::new(),
        follow: options.follow,
        previous: options.previous,
        tail_lines: options.tail_lines.unwrap_or(-1),
        timestamps: options.timestamps,
        since_unix_nanos,
    };
    let shared = call.shared.clone();
    let pod_name = call.info.name.clone();
    let mut left = options.limit_bytes.map(|n| n as u64);
    Ok(Served::Later(Box::pin(async move {
        let mut chunks = relay::pod_logs(&shared, request).await.map_err(|e| match e.code() {
            tonic::Code::NotFound if options.previous => {
                ApiError::bad_request(format!("previous terminated container {container:?} in pod {pod_name:?} not found"))
            }
            tonic::Code::NotFound => {
                ApiError::bad_request(format!("container {container:?} in pod {pod_name:?} is waiting to start: ContainerCreating"))
            }
            _ => ApiError::internal(e.message().to_string()),
        })?;
        let (tx, body) = mpsc::channel(16);
        tokio::spawn(async move {
            loop {
                let chunk = tokio::select! {
                    _ = tx.closed() => return,
                    chunk = chunks.message() => chunk,
                };
                let Ok(Some(chunk)) = chunk else { return };
                let take = within_limit(&mut left, &chunk.data);
                if take > 0 && tx.send(Bytes::copy_from_slice(&chunk.data[..take])).await.is_err() {
                    return;
                }
                if left == Some(0) {
                    return;
                }
            }
        });
        Ok(Served::Stream(Stream { status: 200, content_type: "text/plain", body }))
    })))
}

/// `pods/NAME/exec` and `pods/NAME/attach` over WebSocket ([`super::channel`]): the pod and the
/// options are checked before the switch (their errors are plain answers), then the agent of the
/// pod's node runs the command as `emu exec` runs it, or attaches to the container's own process
/// (its console, when it has `stdin` or `tty`; an attach ends with the container's run).
pub(super) fn exec(call: &Call) -> Result<Served, ApiError> {
    let attach = call.info.subresource == "attach";
    let pod = pod(call)?;
    let options = ExecOptions::parse(&call.query)?;
    let container = container_of(&pod, &options.container)?;
    if options.command.is_empty() && !attach {
        return Err(ApiError::bad_request("you must specify at least one command for the container"));
    }
    let (uid, node) = relay::pod_placement(call.shared, &call.info.namespace, &call.info.name).map_err(|e| match e.code() {
        tonic::Code::NotFound => ApiError::not_found("", "pods", &call.info.name),
        _ => ApiError::bad_request(e.message().to_string()),
    })?;
    let start = ExecStart {
        namespace: call.info.namespace.clone(),
        pod: call.info.name.clone(),
        container,
        pod_uid: uid,
        node,
        command: options.command.clone(),
        stdin: options.stdin,
        tty: options.tty,
        attach,
        ..Default::default()
    };
    let shared = call.shared.clone();
    Ok(Served::Upgrade(Upgrade {
        protocols: channel::PROTOCOLS,
        run: Box::new(move |io, protocol| Box::pin(exec_session(shared, start, options, io, protocol))),
    }))
}

/// One exec over WebSocket: the client's messages become the command's input, its output and
/// then its exit status the client's messages, and the socket is closed.
async fn exec_session(shared: crate::state::Shared, start: ExecStart, options: ExecOptions, io: Upgraded, protocol: &'static str) {
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut to_client, mut from_client) = ws.split();
    let v5 = protocol.starts_with("v5.");
    let send = |channel: u8, data: &[u8]| Message::Binary(Bytes::from(channel::to_client(channel, data)));
    if to_client.send(send(options.first_channel(), b"")).await.is_err() {
        return;
    }
    let (namespace, pod) = (start.namespace.clone(), start.pod.clone());
    let (input, inputs) = mpsc::channel(16);
    let _ = input.send(ExecInput { input: Some(exec_input::Input::Start(start)) }).await;
    // The client's side: stdin until its close (v5) or the socket's end, and resizes. Dropping
    // the sender ends the command's stdin.
    let reader = tokio::spawn(async move {
        let mut stdin = Some(input);
        while let Some(Ok(message)) = from_client.next().await {
            let data: Bytes = match message {
                Message::Binary(b) => b,
                Message::Text(t) => Bytes::copy_from_slice(t.as_bytes()),
                Message::Close(_) => break,
                _ => continue,
            };
            let Some(tx) = &stdin else { continue };
            let sent = match channel::from_client(&data, v5) {
                FromClient::Stdin(bytes) => tx.send(ExecInput { input: Some(exec_input::Input::Stdin(bytes)) }).await,
                FromClient::Resize(sizes) => {
                    let mut r = Ok(());
                    for (cols, rows) in sizes {
                        r = r.and(tx.send(ExecInput { input: Some(exec_input::Input::Resize(TerminalSize { rows, cols })) }).await);
                    }
                    r
                }
                FromClient::CloseStdin => {
                    stdin = None;
                    Ok(())
                }
                FromClient::Nothing => Ok(()),
            };
            if sent.is_err() {
                break;
            }
        }
    });
    let status = match relay::pod_exec(&shared, &namespace, &pod, ReceiverStream::new(inputs)).await {
        Err(e) => channel::failure_status(e.message()),
        Ok(mut outputs) => loop {
            match outputs.message().await {
                Ok(Some(ExecOutput { output: Some(exec_output::Output::Stdout(data)) })) => {
                    if to_client.send(send(channel::STDOUT, &data)).await.is_err() {
                        break String::new();
                    }
                }
                Ok(Some(ExecOutput { output: Some(exec_output::Output::Stderr(data)) })) => {
                    if to_client.send(send(channel::STDERR, &data)).await.is_err() {
                        break String::new();
                    }
                }
                Ok(Some(ExecOutput { output: Some(exec_output::Output::ExitCode(code)) })) => break channel::exit_status(code),
                Ok(Some(_)) => {}
                Ok(None) => break channel::failure_status("the command's stream ended without its exit code"),
                Err(e) => break channel::failure_status(e.message()),
            }
        },
    };
    reader.abort();
    if !status.is_empty() {
        let _ = to_client.send(send(channel::ERROR, status.as_bytes())).await;
    }
    let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
    let _ = to_client.send(Message::Close(Some(close))).await;
}

/// kubectl's port-forward subprotocol (SPDY/3.1 inside WebSocket binary messages), then the
/// Python client's (channels, as the kubelet's WebSocket port-forward serves them).
const PORT_FORWARD_PROTOCOLS: &[&str] = &["SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io"];

/// `pods/NAME/portforward` for kubectl (SPDY/3.1 inside WebSocket, [`super::spdy`]): each
/// connection kubectl accepts opens an error stream and a data stream naming the port; the data
/// stream is relayed to that port in the pod through the agent of its node, as `emu
/// port-forward` does; a failure is written on the error stream, which ends with the data.
pub(super) fn port_forward(call: &Call) -> Result<Served, ApiError> {
    let pod = pod(call)?;
    if object::str_at(&pod, &["spec", "nodeName"]).unwrap_or("").is_empty() {
        return Err(ApiError::bad_request(format!("pod {} does not have a host assigned", call.info.name)));
    }
    let ports = forwarded_ports(&call.query)?;
    let (shared, namespace, name) = (call.shared.clone(), call.info.namespace.clone(), call.info.name.clone());
    Ok(Served::Upgrade(Upgrade {
        protocols: PORT_FORWARD_PROTOCOLS,
        run: Box::new(move |io, protocol| match protocol.starts_with("SPDY/") {
            true => Box::pin(port_forward_session(shared, namespace, name, io)),
            false => Box::pin(port_forward_channels(shared, namespace, name, ports, io)),
        }),
    }))
}

/// The `ports` of a channel port-forward (`ports=80,443` or repeated): the kubelet's 400 for
/// one that is not a port. kubectl's SPDY port-forward names its ports in its streams instead.
pub fn forwarded_ports(query: &[(String, String)]) -> Result<Vec<u16>, ApiError> {
    let texts = query.iter().filter(|(k, _)| k == "ports").flat_map(|(_, v)| v.split(',')).map(str::trim).filter(|p| !p.is_empty());
    texts
        .map(|p| match p.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(ApiError::bad_request(format!("invalid port {p:?}: must be between 1 and 65535"))),
        })
        .collect()
}

/// The Python client's port-forward (`v4.channel.k8s.io`): for the i-th port, data on channel
/// 2i and errors on 2i+1, each first carrying the port (2 bytes, little-endian); one connection
/// to each port, and the socket closed once they are all done.
async fn port_forward_channels(shared: crate::state::Shared, namespace: String, pod: String, ports: Vec<u16>, io: Upgraded) {
    let (out, writer, mut source) = websocket(io).await;
    let mut inputs = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        for ch in [data, error] {
            let _ = out.send(channel::to_client(ch, &port.to_le_bytes())).await;
        }
        let (tx, rx) = mpsc::channel(16);
        inputs.push(tx);
        let (shared, namespace, pod, out) = (shared.clone(), namespace.clone(), pod.clone(), out.clone());
        tasks.spawn(async move {
            let failure = match relay::pod_port_forward(&shared, &namespace, &pod, u32::from(port), ReceiverStream::new(rx)).await {
                Err(e) => Some(e.message().to_string()),
                Ok(mut from_pod) => loop {
                    match from_pod.message().await {
                        Ok(Some(o)) => {
                            if out.send(channel::to_client(data, &o.data)).await.is_err() {
                                return;
                            }
                        }
                        Ok(None) => break None,
                        Err(e) => break Some(e.message().to_string()),
                    }
                },
            };
            if let Some(e) = failure {
                let _ = out.send(channel::to_client(error, format!("error forwarding port {port} to pod {pod}: {e}").as_bytes())).await;
            }
        });
    }
    while !tasks.is_empty() {
        tokio::select! {
            _ = tasks.join_next() => {}
            message = source.next() => {
                let bytes = match message {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => Bytes::copy_from_slice(t.as_bytes()),
                    Some(Ok(_)) => continue,
                    _ => break,
                };
                if let Some((&ch, payload)) = bytes.split_first() {
                    if let Some(tx) = inputs.get(usize::from(ch) / 2).filter(|_| ch % 2 == 0 && !payload.is_empty()) {
                        let _ = tx.send(payload.to_vec()).await;
                    }
                }
            }
        }
    }
    tasks.abort_all();
    drop(out);
    let _ = writer.await;
}

async fn port_forward_session(shared: crate::state::Shared, namespace: String, pod: String, io: Upgraded) {
    let (out, writer, mut source) = websocket(io).await;
    let (mut buf, mut headers_out, mut headers_in) = (Vec::new(), spdy::HeaderWriter::default(), spdy::HeaderReader::default());
    // The client's side of each data stream, and the error stream of each request.
    let mut inputs: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    let mut error_streams: HashMap<String, u32> = HashMap::new();
    let mut tasks = Vec::new();
    'session: while let Some(Ok(message)) = source.next().await {
        match message {
            Message::Binary(bytes) => buf.extend_from_slice(&bytes),
            Message::Close(_) => break,
            _ => continue,
        }
        loop {
            let frame = match spdy::next_frame(&mut buf) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "port-forward: bad SPDY frame");
                    break 'session;
                }
            };
            let reply = match frame {
                spdy::Frame::Control { kind: spdy::SYN_STREAM, payload, .. } => {
                    let Ok((stream, headers)) = headers_in.syn_stream(&payload) else { break 'session };
                    let header =
                        |name: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone()).unwrap_or_default();
                    if out.send(headers_out.syn_reply(stream, &[])).await.is_err() {
                        break 'session;
                    }
                    match (header("streamtype").as_str(), header("port").parse::<u16>()) {
                        ("error", _) => {
                            error_streams.insert(header("requestid"), stream);
                            None
                        }
                        ("data", Ok(port)) => {
                            let (tx, rx) = mpsc::channel(16);
                            inputs.insert(stream, tx);
                            let error_stream = error_streams.remove(&header("requestid"));
                            let (shared, namespace, pod, out) = (shared.clone(), namespace.clone(), pod.clone(), out.clone());
                            tasks.push(tokio::spawn(async move {
                                forward(&shared, &namespace, &pod, port, rx, (stream, error_stream), &out).await
                            }));
                            None
                        }
                        _ => Some(spdy::rst_stream(stream, 1)),
                    }
                }
                spdy::Frame::Control { kind: spdy::PING, payload, .. } => spdy::first_word(&payload).map(spdy::ping),
                spdy::Frame::Control { kind: spdy::RST_STREAM, payload, .. } => {
                    if let Some(stream) = spdy::first_word(&payload) {
                        inputs.remove(&stream);
                    }
                    None
                }
                spdy::Frame::Control { kind: spdy::GOAWAY, .. } => break 'session,
                // SETTINGS, WINDOW_UPDATE (spdystream keeps no flow-control windows), HEADERS.
                spdy::Frame::Control { .. } => None,
                spdy::Frame::Data { stream, flags, data } => {
                    if let Some(tx) = inputs.get(&stream).filter(|_| !data.is_empty()) {
                        let _ = tx.send(data).await;
                    }
                    if flags & spdy::FIN != 0 {
                        // The client's side ended: so does the pod's connection's writing side.
                        inputs.remove(&stream);
                    }
                    None
                }
            };
            if let Some(reply) = reply {
                if out.send(reply).await.is_err() {
                    break 'session;
                }
            }
        }
    }
    for task in tasks {
        task.abort();
    }
    drop(out);
    let _ = writer.await;
}

/// The server's side of a WebSocket on `io`: a sender of binary messages (one task owns the
/// socket's writing side, so every stream's task can send whole messages), that task (it sends
/// the close once every sender is gone), and the messages from the client.
async fn websocket(
    io: Upgraded,
) -> (mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<()>, futures::stream::SplitStream<WebSocketStream<Upgraded>>) {
    let (mut sink, source) = WebSocketStream::from_raw_socket(io, Role::Server, None).await.split();
    let (out, mut messages) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(message) = messages.recv().await {
            if sink.send(Message::Binary(Bytes::from(message))).await.is_err() {
                return;
            }
        }
        let _ = sink.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
    });
    (out, writer, source)
}

/// One forwarded connection: the client's bytes to `port` in the pod, the pod's back on the
/// data stream, then the end of the data stream and of its error stream (with the failure, if
/// any: kubectl prints it and stops forwarding).
async fn forward(
    shared: &crate::state::Shared,
    namespace: &str,
    pod: &str,
    port: u16,
    from_client: mpsc::Receiver<Vec<u8>>,
    (stream, error_stream): (u32, Option<u32>),
    out: &mpsc::Sender<Vec<u8>>,
) {
    let failure = match relay::pod_port_forward(shared, namespace, pod, u32::from(port), ReceiverStream::new(from_client)).await {
        Err(e) => Some(e.message().to_string()),
        Ok(mut from_pod) => loop {
            match from_pod.message().await {
                Ok(Some(o)) => {
                    for chunk in o.data.chunks(32 * 1024) {
                        if out.send(spdy::data(stream, 0, chunk)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(None) => break None,
                Err(e) => break Some(e.message().to_string()),
            }
        },
    };
    let _ = out.send(spdy::data(stream, spdy::FIN, b"")).await;
    if let Some(error_stream) = error_stream {
        let text = failure.map(|e| format!("error forwarding port {port} to pod {pod}: {e}")).unwrap_or_default();
        let _ = out.send(spdy::data(error_stream, spdy::FIN, text.as_bytes())).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_options() {
        let q = |s: &str| super::super::request::query_pairs(s);
        let o = LogOptions::parse(&q("container=a&follow=true&tailLines=10&limitBytes=5&timestamps=true"), "p").unwrap();
        assert_eq!(
            o,
            LogOptions {
                container: "a".into(),
                follow: true,
                tail_lines: Some(10),
                limit_bytes: Some(5),
                timestamps: true,
                ..Default::default()
            }
        );
        let e = LogOptions::parse(&q("tailLines=-1&limitBytes=0"), "p").unwrap_err();
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        assert_eq!(
            e.message,
            "PodLogOptions \"p\" is invalid: [tailLines: Invalid value: -1: must be greater than or equal to 0, limitBytes: Invalid value: 0: must be greater than 0]"
        );
        assert_eq!(LogOptions::parse(&q("tailLines=x"), "p").unwrap_err().code, 400);
    }

    #[test]
    fn containers() {
        let pod =
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(
            container_of(&pod, "").unwrap_err().message,
            "a container name must be specified for pod p, choose one of: [a b] or one of the init containers: [i]"
        );
        assert_eq!(container_of(&pod, "b").unwrap(), "b");
        assert_eq!(container_of(&pod, "i").unwrap(), "i");
        let e = container_of(&pod, "z").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (400, "container z is not valid for pod p"));
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_of(&one, "").unwrap(), "only");
    }

    #[test]
    fn ports_of_a_channel_port_forward() {
        let q = |s: &str| super::super::request::query_pairs(s);
        assert_eq!(forwarded_ports(&q("ports=80,443&ports=8080")).unwrap(), [80, 443, 8080]);
        assert_eq!(forwarded_ports(&q("")).unwrap(), Vec::<u16>::new());
        assert_eq!(forwarded_ports(&q("ports=0")).unwrap_err().code, 400);
        assert_eq!(forwarded_ports(&q("ports=http")).unwrap_err().code, 400);
    }

    #[test]
    fn limit_bytes() {
        let mut left = Some(5);
        assert_eq!(within_limit(&mut left, b"abc"), 3);
        assert_eq!(within_limit(&mut left, b"defg"), 2);
        assert_eq!(left, Some(0));
        let mut none = None;
        assert_eq!(within_limit(&mut none, b"abc"), 3);
    }
}
