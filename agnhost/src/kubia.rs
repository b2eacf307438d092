//! The `kubia` app of "Kubernetes in Action" (images `luksa/kubia` and `luksa/kubia-unhealthy`):
//! `node app.js`, a web server on 8080 answering `You've hit <hostname>`. Our `node` is this
//! program under that name: it runs no JavaScript, but reads the script it is given and serves
//! the book's app it recognizes in it (the unhealthy one by its 500 answer), so that the image's
//! `/app.js` is the book's source and `node app.js` its command line, as in the real images.

use crate::Reply;
use std::net::SocketAddr;

/// The book's two apps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// `luksa/kubia`: every request answered.
    Kubia,
    /// `luksa/kubia-unhealthy`: from the 6th request on, 500 "I'm not well. Please restart me!"
    /// (the book's liveness probe example).
    Unhealthy,
}

/// The unhealthy app's answer, which also tells it apart.
const NOT_WELL: &str = "I'm not well. Please restart me!";
/// How many requests the unhealthy app answers well (`if (requestCount > 5)`).
pub const HEALTHY_REQUESTS: u64 = 5;

/// Which app `source` (the script's text) is; an error for any other script.
pub fn recognize(source: &str) -> Result<App, String> {
    if !source.contains("You've hit ") {
        return Err("emu's node runs only the kubia app.js of \"Kubernetes in Action\" (images luksa/kubia and \
                    luksa/kubia-unhealthy), and this script is another"
            .into());
    }
    Ok(if source.contains(NOT_WELL) { App::Unhealthy } else { App::Kubia })
}

/// The answer to the `n`th request (from 1).
pub fn answer(app: App, n: u64, hostname: &str) -> Reply {
    let reply = match app {
        App::Unhealthy if n > HEALTHY_REQUESTS => Reply::text(500, NOT_WELL),
        _ => Reply::text(200, format!("You've hit {hostname}\n")),
    };
    // Node's http module sets no Content-Type of its own.
    Reply { content_type: None, ..reply }
}

/// `console.log("Received request from " + request.connection.remoteAddress)`: node listens on
/// `::`, so an IPv4 client shows as an IPv4-mapped IPv6 address.
pub fn log_line(peer: SocketAddr) -> String {
    match peer {
        SocketAddr::V4(v4) => format!("Received request from ::ffff:{}", v4.ip()),
        SocketAddr::V6(v6) => format!("Received request from {}", v6.ip()),
    }
}

/// The first line the app prints.
pub const STARTING: &str = "Kubia server starting...";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_books_apps_are_recognized_by_their_answers() {
        let kubia = "var handler = function(request, response) {\n  response.writeHead(200);\n  response.end(\"You've hit \" + os.hostname() + \"\\n\");\n};";
        assert_eq!(recognize(kubia), Ok(App::Kubia));
        let unhealthy = format!("if (requestCount > 5) {{ response.writeHead(500); response.end(\"{NOT_WELL}\"); return; }}\n{kubia}");
        assert_eq!(recognize(&unhealthy), Ok(App::Unhealthy));
        assert!(recognize("console.log('hello')").unwrap_err().contains("luksa/kubia"));
    }

    #[test]
    fn answers_and_the_log() {
        assert_eq!(answer(App::Kubia, 100, "kubia-7nog1").body, "You've hit kubia-7nog1\n");
        assert_eq!(answer(App::Kubia, 1, "k").status, 200);
        assert_eq!(answer(App::Kubia, 1, "k").content_type, None);
        for n in 1..=5 {
            assert_eq!(answer(App::Unhealthy, n, "kubia-liveness").status, 200, "request {n}");
        }
        let sixth = answer(App::Unhealthy, 6, "kubia-liveness");
        assert_eq!((sixth.status, sixth.body.as_str()), (500, "I'm not well. Please restart me!"));
        assert_eq!(log_line("10.244.1.7:40312".parse().expect("peer")), "Received request from ::ffff:10.244.1.7");
    }
}
