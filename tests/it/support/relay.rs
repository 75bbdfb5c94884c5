//! A name that moves at failover, as a DNS name, a Kubernetes `-rw` Service, a cloud endpoint or
//! a proxy is: a TCP relay on a port of its own that forwards each new connection to the server it
//! currently points at. The test switches it to the promoted standby; connections already open
//! stay with the server they reached (they end when it dies), as with a DNS change.

use std::io::ErrorKind;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::time::Duration;

pub struct Relay {
    pub port: u16,
    target: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Listens on a free port of 127.0.0.1 and forwards to `127.0.0.1:target`.
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let relay = Relay {
            port,
            target: Arc::new(AtomicU16::new(target)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (to, stop) = (relay.target.clone(), relay.stop.clone());
        std::thread::Builder::new()
            .name(format!("relay-{port}"))
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => forward(client, to.load(Ordering::Relaxed)),
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(50)),
                    }
                }
            })
            .unwrap();
        relay
    }

    /// New connections go to `127.0.0.1:target` from now on.
    pub fn switch(&self, target: u16) {
        self.target.store(target, Ordering::Relaxed);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Copies bytes both ways between `client` and the server at `port` until either side ends.
fn forward(client: TcpStream, port: u16) {
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect(("127.0.0.1", port)) else {
        // Nothing listens there (the server is down): the client sees the connection end.
        return;
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    for (mut from, mut to) in [
        (client.try_clone().unwrap(), server.try_clone().unwrap()),
        (server, client),
    ] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Both);
            let _ = from.shutdown(Shutdown::Both);
        });
    }
}
