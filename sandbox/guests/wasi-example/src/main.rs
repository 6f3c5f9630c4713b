//! A WASI code step, as any language targeting wasm32-wasip1 can write one: the step's input
//! JSON arrives on stdin, the output JSON leaves on stdout, anything on stderr becomes the
//! step's log.
//!
//! With `{"text": "..."}` it answers word and character counts. The `try` input asks it to do
//! something the sandbox must refuse or contain (the tests use it): `"file"`, `"env"`, `"net"`,
//! `"loop"`, `"memory"`, `"exit"`, `"panic"`.

use serde_json::{json, Value};
use std::io::{Read, Write};

fn main() {
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw).expect("stdin");
    let input: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    eprintln!("read {} bytes of input", raw.len());
    let output = match input.get("try").and_then(Value::as_str) {
        Some("file") => json!({
            "read": outcome(std::fs::read_to_string("/etc/passwd")),
            "list": outcome(std::fs::read_dir(".")),
            "write": outcome(std::fs::write("escape.txt", b"x")),
        }),
        Some("env") => json!({ "vars": std::env::vars().collect::<Vec<_>>(), "args": std::env::args().count() }),
        Some("net") => json!({ "connect": outcome(std::net::TcpStream::connect("127.0.0.1:22")) }),
        Some("loop") => {
            let mut x: u64 = 0;
            loop {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                if x == 42 {
                    break json!(x);
                }
            }
        }
        Some("memory") => {
            let mut hog: Vec<Vec<u8>> = Vec::new();
            loop {
                hog.push(vec![1u8; 1 << 20]);
                if hog.len() > 1 << 20 {
                    break json!(hog.len());
                }
            }
        }
        Some("exit") => std::process::exit(3),
        Some("panic") => panic!("the guest panicked on purpose"),
        _ => {
            let text = input.get("text").and_then(Value::as_str).unwrap_or_default();
            json!({
                "words": text.split_whitespace().count(),
                "chars": text.chars().count(),
                "upper": text.to_uppercase(),
            })
        }
    };
    std::io::stdout().write_all(output.to_string().as_bytes()).expect("stdout");
}

/// `{"Ok": null}` or `{"Err": "message"}`.
fn outcome<T>(r: std::io::Result<T>) -> Value {
    match r {
        Ok(_) => json!({ "Ok": null }),
        Err(e) => json!({ "Err": e.to_string() }),
    }
}
