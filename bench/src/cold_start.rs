//! Cold starts under a minimal AWS Lambda Runtime API emulator, in std only.
//!
//! [`measure_cold_start`] binds 127.0.0.1 on an ephemeral port, spawns the function binary with
//! `AWS_LAMBDA_RUNTIME_API` pointing there, hands the first `GET /2018-06-01/runtime/invocation/next` one event and
//! times the function's answer. One thread accepts connections, one thread serves each connection (HTTP/1.1 with
//! keep-alive, bodies framed by `Content-Length` or `Transfer-Encoding: chunked`), and they report to the measuring
//! thread over an `mpsc` channel, stamping each report with the `Instant` the request was fully read.
//!
//! What the client in `lambda_runtime` 1.5 / `lambda_runtime_api_client` 1.1 (a pooled hyper 1 HTTP/1.1 client)
//! sends: `GET .../invocation/next` without a body; buffered responses, `/error` and `/init/error` as a POST with a
//! `Content-Length` body; streaming responses (`Lambda-Runtime-Function-Response-Mode: streaming`) as a chunked POST
//! whose body is a JSON metadata prelude (with `statusCode`), eight NUL bytes and the payload, with the error type
//! in a `Lambda-Runtime-Function-Error-Type` trailer if the stream failed midway. All of these are handled.

use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NEXT_PATH: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION_PREFIX: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR_PATH: &str = "/2018-06-01/runtime/init/error";
const TRACE_ID: &str = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0";
/// Longest request line, header line or chunk-size line accepted.
const MAX_LINE: u64 = 16 * 1024;
const MAX_HEADERS: usize = 128;
/// Largest request body accepted (Lambda's own limit is 6 MB buffered, 20 MB streamed).
const MAX_BODY: u64 = 32 * 1024 * 1024;
/// How often the measuring thread checks whether the function exited while it waits.
const EXIT_POLL: Duration = Duration::from_millis(5);
/// The invocation deadline handed to the function.
const DEADLINE: Duration = Duration::from_secs(30);

/// One cold start of a Lambda function binary under the emulator.
#[derive(Debug, Clone)]
pub struct ColdStart {
    /// exec → the function's first `GET /2018-06-01/runtime/invocation/next`.
    ///
    /// If the function reported `/init/error` without ever asking for an event, this equals `to_first_response`.
    pub to_first_next: Duration,
    /// exec → the function's `POST .../invocation/{id}/response` (or `/error`) for the first event, body fully read.
    pub to_first_response: Duration,
    /// The HTTP status code inside the function's API Gateway v2 response JSON (`statusCode`), if it posted one.
    pub response_status: Option<u16>,
    /// The body the function posted for the first event: its response payload (all of it for a function that is not
    /// behind an HTTP API, such as an authorizer's decision, which has no `statusCode`), or its error report.
    pub response: Vec<u8>,
    /// Peak resident set size of the process (VmHWM from /proc/<pid>/status, KiB), read after the response arrived
    /// and before the process is killed.
    pub peak_rss_kib: u64,
    /// Whether the function reported an error via `/invocation/{id}/error` or `/init/error` (or a streamed response
    /// ended with a `Lambda-Runtime-Function-Error-Type` trailer).
    pub errored: bool,
}

/// Runs `binary` once as a fresh process under a Runtime API emulator on 127.0.0.1 (ephemeral port), hands it `event`
/// (a JSON invocation payload, e.g. an API Gateway HTTP API v2 event) as its first invocation, records the timings,
/// then kills it (and reaps it). `env` is added to the child's environment; the emulator sets AWS_LAMBDA_RUNTIME_API
/// and the usual variables: AWS_LAMBDA_FUNCTION_NAME (file name of the binary), AWS_LAMBDA_FUNCTION_VERSION=$LATEST,
/// AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128, AWS_LAMBDA_LOG_STREAM_NAME, AWS_LAMBDA_LOG_GROUP_NAME, _HANDLER=bootstrap,
/// LAMBDA_TASK_ROOT (binary's dir), AWS_EXECUTION_ENV=AWS_Lambda_provided.al2023.
/// The child's stdout/stderr go to /dev/null unless `inherit_output` is true.
/// Fails (Err with a clear message) if the process exits early, or nothing arrives within `timeout`.
///
/// The emulator also sets AWS_LAMBDA_INITIALIZATION_TYPE=on-demand. The child inherits this process's environment;
/// entries of `env` override it and the emulator's variables, except AWS_LAMBDA_RUNTIME_API. AWS_REGION is not set:
/// pass it in `env` if the function needs one. `timeout` bounds the whole wait, from exec to the first answer. Also
/// fails if the function calls an endpoint the emulator does not implement (extensions, `/restore/next`, …), sends a
/// malformed request, or answers with a request id it was not given.
pub fn measure_cold_start(
    binary: &Path,
    env: &[(String, String)],
    event: &str,
    timeout: Duration,
    inherit_output: bool,
) -> Result<ColdStart, String> {
    let name = binary
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{} does not name a file", binary.display()))?;
    let invocation = Arc::new(Invocation::new(&name, event));
    let (events_tx, events) = mpsc::channel();
    // Declared before the child so that it is dropped (threads stopped) after the child is killed.
    let emulator = Emulator::start(Arc::clone(&invocation), events_tx)?;

    let mut command = lambda_command(binary, &invocation.request_id.replace('-', ""), env, &emulator.addr.to_string());
    let output = || if inherit_output { Stdio::inherit() } else { Stdio::null() };
    command.stdout(output()).stderr(output());

    let started = Instant::now();
    let child = command.spawn().map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let mut child = KillOnDrop(child);

    let result = wait_for_first_answer(&events, &mut child.0, started, timeout, inherit_output).and_then(|answer| {
        let to_first_response = answer.at.saturating_duration_since(started);
        Ok(ColdStart {
            to_first_next: answer.first_next.map_or(to_first_response, |at| at.saturating_duration_since(started)),
            to_first_response,
            response_status: answer.status,
            response: answer.body,
            peak_rss_kib: peak_rss_kib(child.0.id())?,
            errored: answer.errored,
        })
    });
    drop(child); // SIGKILL and reap; closes the function's sockets.
    drop(emulator); // Stops the acceptor, shuts down and joins every connection thread.
    result
}

/// The command that starts `binary` as Lambda starts a function instance: the usual Lambda variables (the function
/// name is the binary's file name; `log_stream` ends the log stream's name), then `env`, then `runtime_api` as
/// AWS_LAMBDA_RUNTIME_API (`host:port`, or a URL with a base path). Stdin is closed; stdout and stderr are left to
/// the caller.
pub fn lambda_command(binary: &Path, log_stream: &str, env: &[(String, String)], runtime_api: &str) -> Command {
    let name = binary.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let task_root = binary.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    let mut command = Command::new(binary);
    command
        .env("AWS_LAMBDA_FUNCTION_NAME", &name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", format!("2000/01/01/[$LATEST]{log_stream}"))
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env("_HANDLER", "bootstrap")
        .env("LAMBDA_TASK_ROOT", task_root)
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .envs(env.iter().map(|(key, value)| (key, value)))
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .stdin(Stdio::null());
    command
}

/// The median of `values` (sorts them in place). For an even count it is the lower of the two middle values, not
/// their mean; for an empty slice it is zero.
pub fn median(values: &mut [Duration]) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    values.sort_unstable();
    values[(values.len() - 1) / 2]
}

/// The one invocation the emulator hands out.
#[derive(Debug)]
struct Invocation {
    request_id: String,
    function_arn: String,
    event: Vec<u8>,
    /// Set by the first `GET /next`; later ones are held open unanswered.
    delivered: AtomicBool,
}

impl Invocation {
    fn new(function_name: &str, event: &str) -> Self {
        static SEQUENCE: AtomicU64 = AtomicU64::new(0);
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.subsec_nanos());
        Self {
            request_id: format!("{nanos:08x}-{:04x}-4000-8000-{sequence:012x}", std::process::id() & 0xffff),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            event: event.as_bytes().to_vec(),
            delivered: AtomicBool::new(false),
        }
    }
}

/// What connection threads report to the measuring thread; `Instant`s are when the request was fully read.
#[derive(Debug)]
enum Event {
    /// A `GET /invocation/next`.
    Next(Instant),
    /// The function's answer to the invocation, or its init error.
    Answer(Answer),
    /// A request the emulator cannot serve; the measurement fails with this message.
    Protocol(String),
}

#[derive(Debug, Clone)]
struct Answer {
    at: Instant,
    status: Option<u16>,
    /// The request body: the response payload or the error report.
    body: Vec<u8>,
    errored: bool,
    /// Earliest `GET /next` seen before the answer (filled in by the measuring thread).
    first_next: Option<Instant>,
}

fn wait_for_first_answer(
    events: &Receiver<Event>,
    child: &mut Child,
    started: Instant,
    timeout: Duration,
    inherit_output: bool,
) -> Result<Answer, String> {
    let deadline = started + timeout;
    let mut first_next: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline {
            let stage = if first_next.is_some() {
                "it took the event but never answered"
            } else {
                "it never asked for an event"
            };
            return Err(format!("no answer from the function within {timeout:?}: {stage}"));
        }
        match events.recv_timeout(EXIT_POLL.min(deadline - now)) {
            Ok(Event::Next(at)) => first_next = Some(first_next.map_or(at, |earlier| earlier.min(at))),
            Ok(Event::Answer(answer)) => return Ok(Answer { first_next, ..answer }),
            Ok(Event::Protocol(message)) => return Err(format!("Runtime API emulator: {message}")),
            Err(RecvTimeoutError::Timeout) => {
                let exited = child.try_wait().map_err(|e| format!("cannot check on the function: {e}"))?;
                if let Some(status) = exited {
                    let hint = if inherit_output { "" } else { " (pass inherit_output to see its output)" };
                    return Err(format!("the function exited ({status}) before answering its first event{hint}"));
                }
            }
            Err(RecvTimeoutError::Disconnected) => return Err("the Runtime API emulator stopped unexpectedly".into()),
        }
    }
}

/// Peak RSS of a live process, from the VmHWM line of /proc/<pid>/status.
pub fn peak_rss_kib(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_vm_hwm(&status).ok_or_else(|| format!("{path} has no VmHWM line (has the process exited?)"))
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let value = status.lines().find_map(|line| line.strip_prefix("VmHWM:"))?;
    value.trim().strip_suffix("kB")?.trim_end().parse().ok()
}

/// Kills (SIGKILL) and reaps the child when dropped, on every path.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // An error here means the child is already gone, which is the goal anyway.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The Runtime API server. Dropping it stops the acceptor thread and joins every connection thread.
#[derive(Debug)]
struct Emulator {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<Connection>>>,
}

/// A served connection: a handle on its socket (to shut it down) and its thread.
#[derive(Debug)]
struct Connection {
    socket: TcpStream,
    thread: JoinHandle<()>,
}

impl Emulator {
    fn start(invocation: Arc<Invocation>, events: Sender<Event>) -> Result<Self, String> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("cannot read the listening address: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (stop, connections) = (Arc::clone(&stop), Arc::clone(&connections));
            thread::Builder::new()
                .name("runtime-api-accept".into())
                .spawn(move || accept_loop(&listener, &stop, &connections, &invocation, &events))
                .map_err(|e| format!("cannot start the emulator thread: {e}"))?
        };
        Ok(Self { addr, stop, acceptor: Some(acceptor), connections })
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept so the acceptor sees `stop`; it then drops the listener and returns.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(acceptor) = self.acceptor.take() {
            // If the wake-up failed and the acceptor still runs, leave it rather than hang here.
            if woke || acceptor.is_finished() {
                let _ = acceptor.join();
            }
        }
        let connections = std::mem::take(&mut *lock(&self.connections));
        for connection in &connections {
            // Unblocks a thread holding a `GET /next` open: its read returns end-of-file.
            let _ = connection.socket.shutdown(Shutdown::Both);
        }
        for connection in connections {
            let _ = connection.thread.join();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(
    listener: &TcpListener,
    stop: &AtomicBool,
    connections: &Mutex<Vec<Connection>>,
    invocation: &Arc<Invocation>,
    events: &Sender<Event>,
) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // Transient (e.g. out of file descriptors): do not spin.
            thread::sleep(Duration::from_millis(1));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(socket) = stream.try_clone() else { continue };
        let (invocation, events) = (Arc::clone(invocation), events.clone());
        let spawned = thread::Builder::new()
            .name("runtime-api-conn".into())
            .spawn(move || serve_connection(stream, &invocation, &events));
        // If the thread cannot start, the stream was dropped with the closure: the client sees the connection close.
        if let Ok(thread) = spawned {
            lock(connections).push(Connection { socket, thread });
        }
    }
}

/// Serves requests on one connection until end-of-file, an I/O error or `Connection: close`.
fn serve_connection(stream: TcpStream, invocation: &Invocation, events: &Sender<Event>) {
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let request = match read_request(&mut reader) {
            Ok(Some(request)) => request,
            // End of file, or a reset/shutdown (the function was killed, or the emulator is stopping).
            Ok(None) | Err(HttpError::Truncated | HttpError::Io) => return,
            Err(HttpError::Malformed(message)) => {
                let _ = events.send(Event::Protocol(format!("malformed request: {message}")));
                let _ = writer.write_all(&error_response(400, "Bad Request", "InvalidRequest", &message));
                return;
            }
        };
        let at = Instant::now();
        let reply = route(&request, at, invocation, events);
        if let Some(reply) = reply
            && writer.write_all(&reply).is_err()
        {
            return;
        }
        // Otherwise a held `GET /next`: the client sends nothing more on this connection, so the next read blocks
        // until the socket closes.
        if request.header("connection").is_some_and(|value| value.eq_ignore_ascii_case("close")) {
            return;
        }
    }
}

/// Handles one request: reports it to the measuring thread, then returns the bytes to answer with, or `None` to
/// hold the request open without answering.
fn route(request: &Request, at: Instant, invocation: &Invocation, events: &Sender<Event>) -> Option<Vec<u8>> {
    let path = request.target.split_once('?').map_or(request.target.as_str(), |(path, _)| path);
    let unknown = || {
        let message = format!("the function called {} {}, which the emulator does not implement", request.method, path);
        let _ = events.send(Event::Protocol(message.clone()));
        Some(error_response(404, "Not Found", "NotFound", &message))
    };
    if request.method == "GET" && path == NEXT_PATH {
        // Reported before the invocation is written, so it always reaches the channel before the answer does.
        let _ = events.send(Event::Next(at));
        return (!invocation.delivered.swap(true, Ordering::SeqCst)).then(|| invocation_response(invocation));
    }
    if request.method != "POST" {
        return unknown();
    }
    let answer = |status, errored| {
        let body = request.body.clone();
        let _ = events.send(Event::Answer(Answer { at, status, body, errored, first_next: None }));
        Some(accepted_response())
    };
    if path == INIT_ERROR_PATH {
        return answer(None, true);
    }
    match path.strip_prefix(INVOCATION_PREFIX).and_then(|rest| rest.split_once('/')) {
        Some((id, "response" | "error")) if id != invocation.request_id => {
            let message = format!("the function answered request id {id:?}, but was given {:?}", invocation.request_id);
            let _ = events.send(Event::Protocol(message.clone()));
            Some(error_response(400, "Bad Request", "InvalidRequestID", &message))
        }
        Some((_, "response")) => {
            let trailer_error = request.trailer("lambda-runtime-function-error-type").is_some();
            answer(response_status_code(&request.body), trailer_error)
        }
        Some((_, "error")) => answer(None, true),
        _ => unknown(),
    }
}

fn invocation_response(invocation: &Invocation) -> Vec<u8> {
    let deadline = SystemTime::now()
        .checked_add(DEADLINE)
        .and_then(|deadline| deadline.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
    http_response(
        200,
        "OK",
        &[
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", &invocation.request_id),
            ("Lambda-Runtime-Deadline-Ms", &deadline.to_string()),
            ("Lambda-Runtime-Invoked-Function-Arn", &invocation.function_arn),
            ("Lambda-Runtime-Trace-Id", TRACE_ID),
        ],
        &invocation.event,
    )
}

fn accepted_response() -> Vec<u8> {
    http_response(202, "Accepted", &[("Content-Type", "application/json")], br#"{"status":"OK"}"#)
}

fn error_response(code: u16, reason: &str, error_type: &str, message: &str) -> Vec<u8> {
    let message = message.replace('\\', "\\\\").replace('"', "\\\"");
    let body = format!(r#"{{"errorMessage":"{message}","errorType":"{error_type}"}}"#);
    http_response(code, reason, &[("Content-Type", "application/json")], body.as_bytes())
}

fn http_response(code: u16, reason: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {code} {reason}\r\n");
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n"); // Writing to a String cannot fail.
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut response = head.into_bytes();
    response.extend_from_slice(body);
    response
}

/// The top-level `"statusCode": <digits>` of a JSON object: an API Gateway v2 response, or the metadata prelude
/// that opens a streamed response. Keys of nested objects and text inside strings are skipped.
fn response_status_code(body: &[u8]) -> Option<u16> {
    let mut depth = 0_usize;
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'"' => {
                let end = closing_quote(body, i + 1)?;
                if depth == 1 && &body[i + 1..end] == b"statusCode" {
                    let after_key = body[end + 1..].trim_ascii_start();
                    let value = after_key.strip_prefix(b":")?.trim_ascii_start();
                    let digits = value.iter().take_while(|byte| byte.is_ascii_digit()).count();
                    return std::str::from_utf8(&value[..digits]).ok()?.parse().ok();
                }
                i = end;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return None;
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the `"` closing a JSON string whose contents start at `start`.
fn closing_quote(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// Header or trailer fields: (lowercased name, trimmed value), in order.
type Fields = Vec<(String, String)>;

/// An HTTP/1.1 request as read off the wire; header and trailer names are lowercased.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    headers: Fields,
    body: Vec<u8>,
    trailers: Fields,
}

impl Request {
    /// First value of a header, by lowercase name.
    fn header(&self, name: &str) -> Option<&str> {
        find_field(&self.headers, name)
    }

    /// First value of a trailer (chunked bodies only), by lowercase name.
    fn trailer(&self, name: &str) -> Option<&str> {
        find_field(&self.trailers, name)
    }
}

fn find_field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(field, _)| field == name).map(|(_, value)| value.as_str())
}

#[derive(Debug)]
enum HttpError {
    /// The connection ended mid-request.
    Truncated,
    /// Reading from the connection failed (reset, shut down, …).
    Io,
    /// The bytes are not a request this emulator accepts.
    Malformed(String),
}

impl From<io::Error> for HttpError {
    fn from(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof { Self::Truncated } else { Self::Io }
    }
}

fn malformed<T>(message: impl Into<String>) -> Result<T, HttpError> {
    Err(HttpError::Malformed(message.into()))
}

/// Reads one request (request line, header fields, body). `Ok(None)` on a clean end-of-file between requests.
fn read_request<R: BufRead>(reader: &mut R) -> Result<Option<Request>, HttpError> {
    // RFC 9112 §2.2: ignore empty lines before the request line.
    let line = loop {
        match read_line(reader)? {
            None => return Ok(None),
            Some(line) if line.is_empty() => {}
            Some(line) => break line,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return malformed(format!("bad request line {line:?}"));
    };
    if method.is_empty() || !target.starts_with('/') || !version.starts_with("HTTP/1.") {
        return malformed(format!("bad request line {line:?}"));
    }
    let headers = read_fields(reader)?;
    let (body, trailers) = match body_length(&headers)? {
        BodyLength::Chunked => read_chunked(reader)?,
        BodyLength::Exactly(length) => {
            let mut body = Vec::new();
            if reader.by_ref().take(length).read_to_end(&mut body)? as u64 != length {
                return Err(HttpError::Truncated);
            }
            (body, Vec::new())
        }
    };
    Ok(Some(Request { method: method.to_owned(), target: target.to_owned(), headers, body, trailers }))
}

/// One line without its CRLF (or bare LF). `Ok(None)` on end-of-file before any byte.
fn read_line<R: BufRead>(reader: &mut R) -> Result<Option<String>, HttpError> {
    let mut line = Vec::new();
    let read = reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.pop() != Some(b'\n') {
        return if read as u64 >= MAX_LINE {
            malformed(format!("line longer than {MAX_LINE} bytes"))
        } else {
            Err(HttpError::Truncated)
        };
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map(Some).or_else(|_| malformed("line is not UTF-8"))
}

/// Header (or trailer) fields up to and including the empty line that ends them.
fn read_fields<R: BufRead>(reader: &mut R) -> Result<Fields, HttpError> {
    let mut fields = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or(HttpError::Truncated)?;
        if line.is_empty() {
            return Ok(fields);
        }
        if fields.len() == MAX_HEADERS {
            return malformed(format!("more than {MAX_HEADERS} header fields"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return malformed(format!("header line without a colon: {line:?}"));
        };
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace()) {
            // Also rejects obsolete line folding (a continuation line starts with whitespace).
            return malformed(format!("bad header name in {line:?}"));
        }
        fields.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
}

#[derive(Debug, PartialEq, Eq)]
enum BodyLength {
    Exactly(u64),
    Chunked,
}

/// RFC 9112 §6.3: `Transfer-Encoding` wins over `Content-Length`; neither means no body.
fn body_length(headers: &[(String, String)]) -> Result<BodyLength, HttpError> {
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(field, _)| field == name)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
    };
    let codings: Vec<&str> = values("transfer-encoding").collect();
    if !codings.is_empty() {
        // The function's runtime only ever sends plain `chunked`; anything else (gzip…) would need decoding.
        return if codings.len() == 1 && codings[0].eq_ignore_ascii_case("chunked") {
            Ok(BodyLength::Chunked)
        } else {
            malformed(format!("unsupported transfer-encoding {}", codings.join(", ")))
        };
    }
    let mut length = None;
    for value in values("content-length") {
        let parsed =
            parse_decimal(value).ok_or_else(|| HttpError::Malformed(format!("bad content-length {value:?}")))?;
        if length.is_some_and(|earlier| earlier != parsed) {
            return malformed("conflicting content-length values");
        }
        length = Some(parsed);
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY {
        return malformed(format!("body of {length} bytes exceeds {MAX_BODY}"));
    }
    Ok(BodyLength::Exactly(length))
}

fn parse_decimal(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// A chunked body (RFC 9112 §7.1): its bytes and its trailer fields.
fn read_chunked<R: BufRead>(reader: &mut R) -> Result<(Vec<u8>, Fields), HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or(HttpError::Truncated)?;
        let size = line.split_once(';').map_or(line.as_str(), |(size, _extensions)| size).trim();
        if size.is_empty() || size.len() > 16 || !size.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return malformed(format!("bad chunk size line {line:?}"));
        }
        let size = u64::from_str_radix(size, 16).or_else(|_| malformed(format!("bad chunk size line {line:?}")))?;
        if size == 0 {
            break;
        }
        // `body` never exceeds MAX_BODY, so this cannot underflow; `size` may be anything up to u64::MAX.
        if size > MAX_BODY - body.len() as u64 {
            return malformed(format!("chunked body exceeds {MAX_BODY} bytes"));
        }
        if reader.by_ref().take(size).read_to_end(&mut body)? as u64 != size {
            // `read_to_end` appended only what arrived; the total no longer lines up.
            return Err(HttpError::Truncated);
        }
        if !read_line(reader)?.ok_or(HttpError::Truncated)?.is_empty() {
            return malformed("chunk data not followed by CRLF");
        }
    }
    let trailers = read_fields(reader)?;
    Ok((body, trailers))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn parse(bytes: &[u8]) -> Result<Option<Request>, HttpError> {
        read_request(&mut Cursor::new(bytes.to_vec()))
    }

    fn parse_ok(bytes: &[u8]) -> Request {
        parse(bytes).expect("parses").expect("a request")
    }

    fn is_malformed(bytes: &[u8]) -> bool {
        matches!(parse(bytes), Err(HttpError::Malformed(_)))
    }

    fn is_truncated(bytes: &[u8]) -> bool {
        matches!(parse(bytes), Err(HttpError::Truncated))
    }

    #[test]
    fn parses_a_get_without_body() {
        let request = parse_ok(
            b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nuser-agent: aws-lambda-rust/1.5.0\r\nHost: 127.0.0.1:9001\r\n\r\n",
        );
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, NEXT_PATH);
        assert_eq!(request.header("host"), Some("127.0.0.1:9001"));
        assert_eq!(request.header("user-agent"), Some("aws-lambda-rust/1.5.0"));
        assert_eq!(request.header("content-length"), None);
        assert!(request.body.is_empty());
    }

    #[test]
    fn header_names_are_case_insensitive_and_values_trimmed() {
        let request = parse_ok(b"POST /x HTTP/1.1\r\nContent-TYPE:   application/json  \r\nX-Empty:\r\n\r\n");
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("x-empty"), Some(""));
        assert_eq!(request.headers.len(), 2);
    }

    #[test]
    fn reads_exactly_content_length_and_keeps_the_next_request() {
        let bytes = b"POST /a HTTP/1.1\r\nContent-Length: 18\r\n\r\n{\"statusCode\":200}\
GET /b HTTP/1.1\r\n\r\n";
        let mut reader = Cursor::new(bytes.to_vec());
        let first = read_request(&mut reader).expect("parses").expect("first request");
        assert_eq!(first.body, b"{\"statusCode\":200}");
        let second = read_request(&mut reader).expect("parses").expect("second request");
        assert_eq!((second.method.as_str(), second.target.as_str()), ("GET", "/b"));
        assert!(read_request(&mut reader).expect("clean end").is_none());
    }

    #[test]
    fn empty_input_and_leading_blank_lines() {
        assert!(parse(b"").expect("clean end").is_none());
        assert!(parse(b"\r\n\r\n").expect("clean end").is_none());
        let request = parse_ok(b"\r\nGET /next HTTP/1.1\r\n\r\n");
        assert_eq!(request.target, "/next");
    }

    #[test]
    fn accepts_bare_lf_line_endings() {
        let request = parse_ok(b"POST /a HTTP/1.1\nContent-Length: 2\n\nok");
        assert_eq!(request.body, b"ok");
    }

    #[test]
    fn rejects_bad_request_lines_and_headers() {
        assert!(is_malformed(b"GET\r\n\r\n"));
        assert!(is_malformed(b"GET /a\r\n\r\n"));
        assert!(is_malformed(b"GET /a HTTP/1.1 extra\r\n\r\n"));
        assert!(is_malformed(b"GET /a SPDY/3\r\n\r\n"));
        assert!(is_malformed(b"GET a HTTP/1.1\r\n\r\n"));
        assert!(is_malformed(b"GET /a HTTP/1.1\r\nno colon here\r\n\r\n"));
        assert!(is_malformed(b"GET /a HTTP/1.1\r\nbad name: v\r\n\r\n"));
        assert!(is_malformed(b"GET /a HTTP/1.1\r\nx: 1\r\n folded\r\n\r\n"));
        assert!(is_malformed(b"GET /a HTTP/1.1\r\nx: \xff\r\n\r\n"));
        let mut long = b"GET /".to_vec();
        long.extend(std::iter::repeat_n(b'a', 20_000));
        long.extend_from_slice(b" HTTP/1.1\r\n\r\n");
        assert!(is_malformed(&long));
        let mut many = b"GET /a HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("x-{i}: v\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert!(is_malformed(&many));
    }

    #[test]
    fn content_length_rules() {
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nContent-Length: -1\r\n\r\n"));
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nContent-Length: +1\r\n\r\nx"));
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy"));
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n"));
        // Repeated identical values are allowed.
        let request = parse_ok(b"POST /a HTTP/1.1\r\nContent-Length: 2, 2\r\ncontent-length: 2\r\n\r\nab");
        assert_eq!(request.body, b"ab");
        // Explicit zero.
        assert!(parse_ok(b"POST /a HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body.is_empty());
    }

    #[test]
    fn truncated_requests_are_reported_as_such() {
        assert!(is_truncated(b"GET /a HTTP/1.1"));
        assert!(is_truncated(b"GET /a HTTP/1.1\r\nhost: x\r\n"));
        assert!(is_truncated(b"POST /a HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort"));
        assert!(is_truncated(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"));
        assert!(is_truncated(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"));
        assert!(is_truncated(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"));
    }

    #[test]
    fn reads_a_chunked_body_with_extensions_and_trailers() {
        let bytes = b"POST /2018-06-01/runtime/invocation/id/response HTTP/1.1\r\n\
Transfer-Encoding: chunked\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n\
Trailer: Lambda-Runtime-Function-Error-Type\r\n\r\n\
5\r\nhello\r\n\
7;name=value\r\n, world\r\n\
A\r\n0123456789\r\n\
0\r\n\
Lambda-Runtime-Function-Error-Type: Runtime.StreamError\r\n\
\r\n\
GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n";
        let mut reader = Cursor::new(bytes.to_vec());
        let request = read_request(&mut reader).expect("parses").expect("a request");
        assert_eq!(request.body, b"hello, world0123456789");
        assert_eq!(request.trailer("lambda-runtime-function-error-type"), Some("Runtime.StreamError"));
        assert_eq!(request.header("lambda-runtime-function-response-mode"), Some("streaming"));
        let next = read_request(&mut reader).expect("parses").expect("pipelined request");
        assert_eq!(next.target, NEXT_PATH);
    }

    #[test]
    fn chunked_wins_over_content_length() {
        let request = parse_ok(
            b"POST /a HTTP/1.1\r\nContent-Length: 3\r\ntransfer-encoding: Chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n",
        );
        assert_eq!(request.body, b"ab");
        assert!(request.trailers.is_empty());
    }

    #[test]
    fn rejects_bad_chunking() {
        let head = b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for body in [&b"zz\r\n"[..], b"\r\n", b"-1\r\n", b"+1\r\nx\r\n0\r\n\r\n", b"2\r\nabc\r\n0\r\n\r\n"] {
            let mut bytes = head.clone();
            bytes.extend_from_slice(body);
            assert!(is_malformed(&bytes), "{:?}", String::from_utf8_lossy(body));
        }
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"));
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"));
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\n"));
        assert!(is_malformed(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n"));
    }

    #[test]
    fn finds_the_top_level_status_code() {
        assert_eq!(response_status_code(br#"{"statusCode":200,"headers":{},"body":"x"}"#), Some(200));
        assert_eq!(response_status_code(b"{ \"body\" : \"{}\",\n \"statusCode\" :\t401 }"), Some(401));
        // Nested keys and string contents do not count.
        assert_eq!(
            response_status_code(br#"{"headers":{"statusCode":"500"},"body":"\"statusCode\":418","statusCode":201}"#),
            Some(201)
        );
        assert_eq!(response_status_code(br#"{"nested":{"statusCode":500}}"#), None);
        assert_eq!(response_status_code(br#"{"body":"no status"}"#), None);
        assert_eq!(response_status_code(br#"{"statusCode":"200"}"#), None);
        assert_eq!(response_status_code(b"not json"), None);
        assert_eq!(response_status_code(b""), None);
        // A streamed response: the metadata prelude, eight NUL bytes, then the payload.
        let mut streamed = br#"{"statusCode":302,"headers":{"location":"/"},"cookies":[]}"#.to_vec();
        streamed.extend_from_slice(&[0; 8]);
        streamed.extend_from_slice(br#"{"statusCode":999}"#);
        assert_eq!(response_status_code(&streamed), Some(302));
    }

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tlogin\nVmPeak:\t  12345 kB\nVmHWM:\t    4321 kB\nVmRSS:\t    4000 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(4321));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn median_sorts_and_takes_the_lower_middle() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut []), Duration::ZERO);
        assert_eq!(median(&mut [ms(7)]), ms(7));
        assert_eq!(median(&mut [ms(9), ms(1), ms(5)]), ms(5));
        assert_eq!(median(&mut [ms(4), ms(1), ms(3), ms(2)]), ms(2));
    }

    #[test]
    fn http_responses_carry_content_length() {
        let response = accepted_response();
        assert_eq!(
            String::from_utf8(response).expect("UTF-8"),
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"
        );
        let error =
            String::from_utf8(error_response(404, "Not Found", "NotFound", "a \"quoted\" \\ path")).expect("UTF-8");
        assert!(error.ends_with(r#"{"errorMessage":"a \"quoted\" \\ path","errorType":"NotFound"}"#), "{error}");
    }

    /// Reads one response off a client socket: status code, lowercased headers, body (by Content-Length).
    fn read_response(reader: &mut impl BufRead) -> (u16, Fields, Vec<u8>) {
        let status_line = read_line(reader).expect("status line").expect("not EOF");
        let code = status_line.split(' ').nth(1).expect("status code").parse().expect("numeric status");
        let headers = read_fields(reader).expect("headers");
        let BodyLength::Exactly(length) = body_length(&headers).expect("framing") else { panic!("chunked response") };
        let mut body = vec![0; usize::try_from(length).expect("fits")];
        reader.read_exact(&mut body).expect("body");
        (code, headers, body)
    }

    /// Drives the emulator over real sockets the way lambda_runtime does, without a function binary.
    #[test]
    fn emulator_serves_one_invocation_and_holds_later_ones() {
        let invocation = Arc::new(Invocation::new("hello", r#"{"version":"2.0"}"#));
        let (tx, events) = mpsc::channel();
        let emulator = Emulator::start(Arc::clone(&invocation), tx).expect("emulator starts");

        let mut client = TcpStream::connect(emulator.addr).expect("connects");
        let mut reader = BufReader::new(client.try_clone().expect("clone"));
        client.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n").expect("sends");
        let (code, headers, body) = read_response(&mut reader);
        assert_eq!(code, 200);
        assert_eq!(body, br#"{"version":"2.0"}"#);
        let id = find_field(&headers, "lambda-runtime-aws-request-id").expect("request id").to_owned();
        assert_eq!(id, invocation.request_id);
        let deadline: u64 = find_field(&headers, "lambda-runtime-deadline-ms").expect("deadline").parse().expect("ms");
        assert!(deadline > 1_600_000_000_000);
        assert_eq!(
            find_field(&headers, "lambda-runtime-invoked-function-arn"),
            Some("arn:aws:lambda:us-east-1:123456789012:function:hello")
        );
        assert_eq!(find_field(&headers, "lambda-runtime-trace-id"), Some(TRACE_ID));
        assert!(matches!(events.recv_timeout(Duration::from_secs(5)), Ok(Event::Next(_))));

        // A streamed (chunked) answer on the same keep-alive connection.
        let post = format!(
            "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n\
             d\r\n{{\"statusCode\"\r\n6\r\n:204}}\0\r\n0\r\n\r\n"
        );
        client.write_all(post.as_bytes()).expect("sends");
        let (code, _, body) = read_response(&mut reader);
        assert_eq!((code, body.as_slice()), (202, &br#"{"status":"OK"}"#[..]));
        match events.recv_timeout(Duration::from_secs(5)) {
            Ok(Event::Answer(answer)) => assert_eq!((answer.status, answer.errored), (Some(204), false)),
            other => panic!("expected an answer, got {other:?}"),
        }

        // The next `GET /next`, on a second connection, is held open: no reply arrives.
        let mut second = TcpStream::connect(emulator.addr).expect("connects");
        second.write_all(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\n\r\n").expect("sends");
        assert!(matches!(events.recv_timeout(Duration::from_secs(5)), Ok(Event::Next(_))));
        second.set_read_timeout(Some(Duration::from_millis(100))).expect("timeout");
        let mut byte = [0; 1];
        assert!(second.read(&mut byte).is_err(), "the held request must not be answered");

        // An answer for a request id it was never given is refused.
        client
            .write_all(b"POST /2018-06-01/runtime/invocation/other/error HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
            .expect("sends");
        assert_eq!(read_response(&mut reader).0, 400);
        assert!(matches!(events.recv_timeout(Duration::from_secs(5)), Ok(Event::Protocol(_))));

        // Dropping the emulator shuts the held connections and joins every thread.
        drop(emulator);
        second.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        assert_eq!(second.read(&mut byte).expect("orderly close"), 0);
        assert!(matches!(events.recv_timeout(Duration::from_secs(5)), Err(RecvTimeoutError::Disconnected)));
    }

    /// Tests that write an executable and spawn processes run one at a time: a fork in another test thread while a
    /// script is still open for writing would make its exec fail with ETXTBSY.
    static SPAWNING: Mutex<()> = Mutex::new(());

    #[test]
    fn missing_binary_is_an_error() {
        let _serial = lock(&SPAWNING);
        let result = measure_cold_start(Path::new("/nonexistent/bootstrap"), &[], "{}", Duration::from_secs(1), false);
        assert!(result.expect_err("cannot start").contains("cannot start /nonexistent/bootstrap"));
    }

    #[cfg(unix)]
    fn script(name: &str, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("cold-start-test-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        fs::write(&path, body).expect("script written");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path
    }

    #[cfg(unix)]
    fn remove_script(path: &Path) {
        let _ = fs::remove_file(path);
        if let Some(dir) = path.parent() {
            let _ = fs::remove_dir(dir); // Only once empty: other tests may still have scripts there.
        }
    }

    #[cfg(unix)]
    #[test]
    fn early_exit_is_reported() {
        if !Path::new("/bin/sh").exists() {
            return;
        }
        let _serial = lock(&SPAWNING);
        let path = script("exits", "#!/bin/sh\nexit 3\n");
        let error = measure_cold_start(&path, &[], "{}", Duration::from_secs(10), false).expect_err("exits early");
        remove_script(&path);
        assert!(error.contains("exited") && error.contains('3'), "{error}");
    }

    #[cfg(unix)]
    #[test]
    fn silent_function_times_out() {
        if !Path::new("/bin/sh").exists() {
            return;
        }
        let _serial = lock(&SPAWNING);
        let path = script("silent", "#!/bin/sh\nexec sleep 30\n");
        let started = Instant::now();
        let error = measure_cold_start(&path, &[], "{}", Duration::from_millis(200), false).expect_err("times out");
        remove_script(&path);
        assert!(error.contains("never asked for an event"), "{error}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    /// A whole cold start against a fake function written in bash (its /dev/tcp speaks to the emulator).
    #[cfg(target_os = "linux")]
    #[test]
    fn measures_a_fake_function() {
        if !Path::new("/bin/bash").exists() {
            return;
        }
        let _serial = lock(&SPAWNING);
        let path = script(
            "bootstrap",
            r#"#!/bin/bash
[ "$AWS_LAMBDA_FUNCTION_NAME" = bootstrap ] && [ "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" = 128 ] || exit 9
[ "$EXTRA" = yes ] && [ "$_HANDLER" = bootstrap ] && [ "$LAMBDA_TASK_ROOT" = "$(dirname "$0")" ] || exit 8
exec 3<>"/dev/tcp/${AWS_LAMBDA_RUNTIME_API%:*}/${AWS_LAMBDA_RUNTIME_API#*:}" || exit 7
printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nhost: x\r\n\r\n' >&3
while IFS= read -r line <&3; do
  line=${line%$'\r'}
  [ -z "$line" ] && break
  case "${line,,}" in lambda-runtime-aws-request-id:*) id=${line#*: } ;; esac
done
body='{"statusCode":201,"body":"hi"}'
printf 'POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\ncontent-length: %d\r\n\r\n%s' "$id" "${#body}" "$body" >&3
exec sleep 30
"#,
        );
        let env = [("EXTRA".to_owned(), "yes".to_owned())];
        let run =
            measure_cold_start(&path, &env, r#"{"version":"2.0"}"#, Duration::from_secs(10), false).expect("measures");
        remove_script(&path);
        assert_eq!(run.response_status, Some(201));
        assert_eq!(run.response, br#"{"statusCode":201,"body":"hi"}"#);
        assert!(!run.errored);
        assert!(run.to_first_next <= run.to_first_response);
        assert!(run.peak_rss_kib > 0);
    }
}
