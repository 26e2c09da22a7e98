//! The HTTP/1.1 client against a scripted server over real TCP: framing, keep-alive and its
//! refusals, and the errors.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// What the scripted server does with one request.
struct Step {
    answer: &'static [u8],
    /// Close the connection after answering.
    close: bool,
}

const fn keep(answer: &'static [u8]) -> Step {
    Step {
        answer,
        close: false,
    }
}

const fn close(answer: &'static [u8]) -> Step {
    Step {
        answer,
        close: true,
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

struct Server {
    url: url::Url,
    accepted: Arc<AtomicUsize>,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Serves `steps` in order, one per request, whatever connection it arrives on.
async fn serve(steps: Vec<Step>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!(
        "http://{}/SxSWS/auth?x=1",
        listener.local_addr().unwrap()
    ))
    .unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let steps = Arc::new(Mutex::new(VecDeque::from(steps)));
    let (a, r) = (accepted.clone(), requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            a.fetch_add(1, Ordering::SeqCst);
            let (steps, requests) = (steps.clone(), r.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: head, then Content-Length bytes.
                    let request = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                            if buf.len() >= end + 4 + len {
                                break buf.drain(..end + 4 + len).collect::<Vec<u8>>();
                            }
                        }
                        let mut chunk = [0u8; 4096];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    requests.lock().unwrap().push(request);
                    let step = steps.lock().unwrap().pop_front();
                    let Some(step) = step else { return };
                    if sock.write_all(step.answer).await.is_err() || step.close {
                        return;
                    }
                }
            });
        }
    });
    Server {
        url,
        accepted,
        requests,
    }
}

fn client() -> Http1 {
    Http1::new(
        None,
        Duration::from_secs(2),
        Duration::from_secs(30),
        8,
        &[("User-Agent", "t/1"), ("OrganizationId", "42")],
    )
}

async fn post(c: &Http1, url: &url::Url) -> Result<Answer, SendError> {
    c.send("POST", url, &[("SOAPAction", "\"\"")], b"<x/>", 1000)
        .await
}

fn failed(r: Result<Answer, SendError>) -> String {
    match r {
        Err(SendError::Failed(e)) => e,
        Err(SendError::NotDelivered(e)) => panic!("not delivered, expected failed: {e}"),
        Ok(a) => panic!("answered HTTP {}", a.status),
    }
}

#[tokio::test]
async fn the_request_is_what_sxs_expects_and_the_connection_is_kept() {
    let s = serve(vec![keep(OK), keep(OK), keep(OK)]).await;
    let c = client();
    for _ in 0..3 {
        let a = post(&c, &s.url).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
    }
    assert_eq!(
        s.accepted.load(Ordering::SeqCst),
        1,
        "one connection for three requests"
    );
    assert_eq!(c.idle(), 1);
    let first = String::from_utf8(s.requests.lock().unwrap()[0].clone()).unwrap();
    let port = s.url.port().unwrap();
    assert_eq!(
        first,
        format!(
            "POST /SxSWS/auth?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: t/1\r\n\
             OrganizationId: 42\r\nSOAPAction: \"\"\r\nContent-Length: 4\r\n\r\n<x/>"
        )
    );
}

#[tokio::test]
async fn chunked_answers_and_interim_answers_are_read() {
    let s = serve(vec![
        keep(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2;ext=1\r\nlo\r\n0\r\nX-Trailer: t\r\n\r\n"),
        keep(OK),
    ])
    .await;
    let c = client();
    let a = post(&c, &s.url).await.unwrap();
    assert_eq!((a.status, a.body.as_slice()), (500, &b"hello"[..]));
    post(&c, &s.url).await.unwrap();
    assert_eq!(s.accepted.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_is_not_kept_unless_the_answer_says_it_may_be() {
    let s = serve(vec![
        // HTTP/1.0, body until close.
        close(b"HTTP/1.0 200 OK\r\n\r\nhello"),
        // Connection: close.
        keep(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"),
        // Bytes beyond the answer: out of step.
        keep(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n"),
        // Both framings: closed after.
        keep(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        keep(OK),
    ])
    .await;
    let c = client();
    for expected_accepts in 1..=5 {
        let a = post(&c, &s.url).await.unwrap();
        assert_eq!((a.status, a.body.as_slice()), (200, &b"hello"[..]));
        assert_eq!(s.accepted.load(Ordering::SeqCst), expected_accepts);
    }
    assert_eq!(c.idle(), 1);
}

#[tokio::test]
async fn a_kept_connection_the_server_closed_is_not_used() {
    let s = serve(vec![close(OK), keep(OK)]).await;
    let c = client();
    post(&c, &s.url).await.unwrap();
    // The server closed it after answering (without saying so); the client kept it.
    assert_eq!(c.idle(), 1);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let a = post(&c, &s.url).await.unwrap();
    assert_eq!(a.status, 200);
    assert_eq!(s.accepted.load(Ordering::SeqCst), 2);
    assert_eq!(s.requests.lock().unwrap().len(), 2, "sent once each");
}

#[tokio::test]
async fn bad_answers_fail_without_a_second_attempt() {
    let cases: [(&'static [u8], &str); 8] = [
        (b"", "closed the connection without answering"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Le",
            "closed the connection in the response head",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
            "after 5 of 10 body bytes",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n",
            "larger than 1000 bytes",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7d0\r\n",
            "larger than 1000 bytes",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "unsupported Transfer-Encoding",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            "two different Content-Length",
        ),
        (b"HTTQ/1.1 200 OK\r\n\r\n", "malformed response head"),
    ];
    for (answer, why) in cases {
        let s = serve(vec![close(answer)]).await;
        let e = failed(post(&client(), &s.url).await);
        assert!(e.contains(why), "{answer:?}: expected {why:?}, got {e:?}");
        assert_eq!(s.requests.lock().unwrap().len(), 1);
    }
    // A body sent until close, larger than allowed.
    static BIG: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let big = BIG.get_or_init(|| {
        let mut v = b"HTTP/1.0 200 OK\r\n\r\n".to_vec();
        v.resize(v.len() + 1001, b'x');
        v
    });
    let s = serve(vec![close(big)]).await;
    assert!(failed(post(&client(), &s.url).await).contains("larger than 1000 bytes"));
    // A head without end.
    static HUGE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let huge = HUGE.get_or_init(|| {
        let mut v = b"HTTP/1.1 200 OK\r\nX: ".to_vec();
        v.resize(v.len() + 2 * MAX_HEAD, b'x');
        v
    });
    let s = serve(vec![keep(huge)]).await;
    assert!(failed(post(&client(), &s.url).await).contains("response head larger than"));
}

#[tokio::test]
async fn nothing_is_sent_that_could_split_the_head() {
    let s = serve(vec![keep(OK)]).await;
    let e = failed(
        client()
            .send(
                "POST",
                &s.url,
                &[("SOAPAction", "a\r\nX-Evil: 1")],
                b"",
                1000,
            )
            .await,
    );
    assert!(e.contains("SOAPAction"), "{e}");
    assert_eq!(s.accepted.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn connect_failures_are_not_delivered() {
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = url::Url::parse(&format!("http://127.0.0.1:{port}/x")).unwrap();
    match post(&client(), &url).await {
        Err(SendError::NotDelivered(e)) => {
            assert!(
                e.contains(&format!("connecting to 127.0.0.1:{port}")),
                "{e}"
            )
        }
        _ => panic!("expected not delivered"),
    }
    let url = url::Url::parse("http://no-such-host.invalid/x").unwrap();
    match post(&client(), &url).await {
        Err(SendError::NotDelivered(e)) => assert!(e.contains("no-such-host.invalid"), "{e}"),
        _ => panic!("expected not delivered"),
    }
}

#[test]
fn the_sweeper_is_started_again_on_the_next_runtime() {
    let c = client();
    let first = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    first.block_on(async {
        let s = serve(vec![keep(OK)]).await;
        post(&c, &s.url).await.unwrap();
    });
    assert!(lock(&c.pools).sweeping);
    // PAM drops its runtime after each authentication: the sweeper goes with it...
    drop(first);
    assert!(!lock(&c.pools).sweeping);
    // ... and the next connection put back starts one on the runtime of the day.
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    second.block_on(async {
        let s = serve(vec![keep(OK)]).await;
        post(&c, &s.url).await.unwrap();
        assert!(lock(&c.pools).sweeping);
    });
}

/// The request line and `Host` for every shape of URL: a port only when the URL names one
/// that is not the scheme's default, IPv6 in brackets, no query mark without a query, and
/// `Content-Length` on a POST even with no body. The buffer is exactly as long as the request
/// (it is never grown: a grown buffer would leave a copy of the body behind).
#[test]
fn requests_are_rendered_for_every_url_shape() {
    let c = client();
    let cases = [
        (
            "http://127.0.0.1:8080/a?b=c",
            "POST /a?b=c HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n",
        ),
        (
            "https://sxs.example.org/SxSWS/auth",
            "POST /SxSWS/auth HTTP/1.1\r\nHost: sxs.example.org\r\n",
        ),
        (
            "https://sxs.example.org:443/x",
            "POST /x HTTP/1.1\r\nHost: sxs.example.org\r\n",
        ),
        (
            "https://sxs.example.org:8443/x",
            "POST /x HTTP/1.1\r\nHost: sxs.example.org:8443\r\n",
        ),
        ("http://[::1]:81/", "POST / HTTP/1.1\r\nHost: [::1]:81\r\n"),
        (
            "http://[fe80::1]/",
            "POST / HTTP/1.1\r\nHost: [fe80::1]\r\n",
        ),
    ];
    for (url, start) in cases {
        let url = url::Url::parse(url).unwrap();
        for body in [&b""[..], b"<x/>"] {
            let out = c
                .render("POST", &url, &[("SOAPAction", "\"\"")], body)
                .unwrap();
            let text = String::from_utf8(out.to_vec()).unwrap();
            let rest = format!(
                "User-Agent: t/1\r\nOrganizationId: 42\r\nSOAPAction: \"\"\r\nContent-Length: {}\r\n\r\n{}",
                body.len(),
                String::from_utf8_lossy(body)
            );
            assert_eq!(text, format!("{start}{rest}"), "{url}");
            assert_eq!(out.capacity(), out.len(), "{url}");
        }
    }
    let url = url::Url::parse("http://127.0.0.1:8080/h").unwrap();
    let out = c.render("GET", &url, &[], b"").unwrap();
    assert_eq!(
        out.as_slice(),
        b"GET /h HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: t/1\r\nOrganizationId: 42\r\n\r\n"
    );
}
