//! Plain HTTP/1.1 on loopback for the tests' own servers: reading a request and an answer,
//! and a recording proxy in front of the Worker (what a client really sent, and a 503 of its
//! own when a test asks for one: an outage, as the SDKs' retry rules meet it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

/// One HTTP request from `conn`: its head and its body (by Content-Length).
pub fn read_request(conn: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
        if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&req[..head_end]).to_string();
    let length: usize = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while req.len() < head_end + length {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    Some((head, req[head_end..].to_vec()))
}

pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines()
        .skip(1)
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()))
}

/// One whole HTTP answer: its head, then a Content-Length or chunked body (wrangler dev may
/// keep the connection open after it).
pub fn read_answer(conn: &mut TcpStream, answer: &mut Vec<u8>) {
    let mut buf = [0u8; 8192];
    loop {
        if let Some(i) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..i + 4]).to_string();
            let body = &answer[i + 4..];
            if let Some(n) = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
                if body.len() >= n {
                    return;
                }
            } else if header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                if body.ends_with(b"0\r\n\r\n") {
                    return;
                }
            } else if head.starts_with("HTTP/1.1 204") || head.starts_with("HTTP/1.1 304") {
                return;
            }
        }
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// One request as the proxy saw it, and the status its client got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub head: String,
    pub body: Vec<u8>,
    pub status: u16,
    /// The head of the answer the client got.
    pub answer_head: String,
}

impl Seen {
    pub fn path(&self) -> &str {
        self.head.split_whitespace().nth(1).unwrap_or("")
    }
}

/// Decides, per request (head, body), whether the proxy answers it with this status itself,
/// after passing it on (`Fault::AfterForwarding`: the write happened, the client is told it
/// did not) or instead of passing it on.
pub enum Fault {
    None,
    AfterForwarding(u16),
}

type Decide = dyn Fn(&str, &[u8]) -> Fault + Send + Sync;

/// A proxy on a port of the OS's choice in front of `upstream_port`, one request per
/// connection; every request is recorded in `log`.
pub fn start(upstream_port: u16, decide: Arc<Decide>, log: Arc<Mutex<Vec<Seen>>>) -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("a port from the OS");
    let port = listener.local_addr().expect("bound").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let (decide, log) = (decide.clone(), log.clone());
            std::thread::spawn(move || {
                let Some((head, body)) = read_request(&mut conn) else { return };
                let answer = forward(upstream_port, &head, &body);
                let (status, answer_head) = match decide(&head, &body) {
                    Fault::AfterForwarding(status) => {
                        let text = r#"{"error":{"code":"temporarily_unavailable","message":"injected by the test proxy"}}"#;
                        let reply = format!(
                            "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                            text.len()
                        );
                        let _ = conn.write_all(reply.as_bytes());
                        (status, reply)
                    }
                    Fault::None => {
                        let _ = conn.write_all(&answer);
                        let text = String::from_utf8_lossy(&answer);
                        let head = text.split("\r\n\r\n").next().unwrap_or("").to_string();
                        (head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0), head)
                    }
                };
                log.lock().unwrap().push(Seen { head, body, status, answer_head });
            });
        }
    });
    port
}

/// The request passed on to the Worker, on a connection of its own: its whole answer.
pub fn forward(upstream_port: u16, head: &str, body: &[u8]) -> Vec<u8> {
    let mut lines = head.trim_end().lines();
    let mut out = format!("{}\r\n", lines.next().unwrap_or(""));
    for l in lines.filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.to_ascii_lowercase().starts_with("keep-alive:")) {
        out.push_str(l);
        out.push_str("\r\n");
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut answer = Vec::new();
    if let Ok(mut worker) = TcpStream::connect(("127.0.0.1", upstream_port)) {
        let _ = worker.write_all(out.as_bytes());
        let _ = worker.write_all(body);
        read_answer(&mut worker, &mut answer);
    }
    answer
}
