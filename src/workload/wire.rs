//! An app connection that speaks PostgreSQL's extended query protocol on
//! its own socket (opened by `backend::wire_stream`). A request is one
//! write — Bind, Execute, Sync — and reads until ReadyForQuery, counting
//! rows without decoding them: the messages libpq sends for
//! `pgbench -M prepared`, with no hop through a connection task, no
//! allocation and no row objects. Through tokio-postgres the same request
//! cost the client about a third more CPU, which a 2-core machine takes
//! from the server (benches/results/load).
//!
//! Statements are prepared by name on first use and prepared again, under a
//! new name, after the server rejects one (the schema may have moved under
//! it, as in an expand/contract rehearsal); the stale one is closed with
//! the next Parse. Parameters of built-in types go in binary, as
//! tokio-postgres sent them; others (enums, domains, extension types) in
//! text, which the server parses with the type's input function. Results
//! come back in text, which every type has.

use std::fmt::Write as _;
use std::io;

use bytes::{BufMut, BytesMut};
use postgres_types::{IsNull, ToSql, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::backend::wire_stream::SessionStream;
use crate::latency::AppError;
use crate::scenario::gen::Value;

/// A request that failed: the error as the app sees it, and whether the
/// connection is gone with it.
#[derive(Debug)]
pub struct Failure {
    pub error: AppError,
    pub lost: bool,
}

impl Failure {
    fn lost(e: io::Error) -> Failure {
        Failure {
            error: AppError {
                sqlstate: "08006".into(),
                message: format!("connection lost: {e}"),
            },
            lost: true,
        }
    }
}

/// How one parameter of a prepared statement is sent.
enum Param {
    /// In binary, as this built-in type.
    Binary(Type),
    /// In text, for the server to parse.
    Text,
}

struct Prepared {
    name: String,
    params: Vec<Param>,
}

pub struct WireSession {
    stream: SessionStream,
    out: BytesMut,
    /// Received bytes; `buf[start..end]` not yet read as messages.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// By query index; prepared on first use.
    statements: Vec<Option<Prepared>>,
    /// Names statements uniquely on this connection.
    prepared: u32,
    /// Stale statements, closed with the next Parse.
    to_close: Vec<String>,
}

/// What the server said in answer to one Sync.
#[derive(Default)]
struct Answer {
    rows: u64,
    error: Option<AppError>,
    fatal: bool,
    /// ParameterDescription's type OIDs (a Describe of a statement).
    param_oids: Vec<u32>,
}

impl WireSession {
    pub fn new(stream: SessionStream, queries: usize) -> WireSession {
        WireSession {
            stream,
            out: BytesMut::with_capacity(256),
            buf: vec![0; 8192],
            start: 0,
            end: 0,
            statements: (0..queries).map(|_| None).collect(),
            prepared: 0,
            to_close: Vec::new(),
        }
    }

    /// The server process of this session.
    pub async fn backend_pid(&mut self) -> Result<i32, Failure> {
        self.out.clear();
        message(&mut self.out, b'Q', |m| {
            put_cstr(m, "SELECT pg_backend_pid()")
        });
        let mut pid = None;
        self.round_trip(|t, body| {
            if t == b'D' {
                pid = first_text_column(body).and_then(|s| s.parse().ok());
            }
        })
        .await?;
        pid.ok_or_else(|| {
            Failure::lost(io::Error::new(
                io::ErrorKind::InvalidData,
                "no pid in the answer to pg_backend_pid()",
            ))
        })
    }

    /// Run query `qi` (`sql`) with `params`; the rows it returned or
    /// changed.
    pub async fn execute(&mut self, qi: u16, sql: &str, params: &[Value]) -> Result<u64, Failure> {
        let qi = qi as usize;
        if self.statements[qi].is_none() {
            self.statements[qi] = Some(self.prepare(sql).await?);
        }
        let Some(statement) = &self.statements[qi] else {
            unreachable!("prepared above")
        };
        self.out.clear();
        bind(&mut self.out, statement, params).map_err(|message| Failure {
            error: AppError {
                sqlstate: "22000".into(),
                message,
            },
            lost: false,
        })?;
        message(&mut self.out, b'E', |m| {
            m.put_u8(0);
            m.put_i32(0);
        });
        message(&mut self.out, b'S', |_| {});
        let answered = self.round_trip(|_, _| {}).await;
        if answered.is_err() {
            // 0A000 cached plan must not change result type, 42703
            // undefined column, 42P01 undefined table...: the statement
            // may be stale. Preparing again is cheap and mirrors what
            // drivers do.
            if let Some(stale) = self.statements[qi].take() {
                self.to_close.push(stale.name);
            }
        }
        answered.map(|a| a.rows)
    }

    async fn prepare(&mut self, sql: &str) -> Result<Prepared, Failure> {
        self.prepared += 1;
        let name = format!("pgrehearse_{}", self.prepared);
        self.out.clear();
        for stale in self.to_close.drain(..) {
            message(&mut self.out, b'C', |m| {
                m.put_u8(b'S');
                put_cstr(m, &stale);
            });
        }
        message(&mut self.out, b'P', |m| {
            put_cstr(m, &name);
            put_cstr(m, sql);
            m.put_i16(0);
        });
        message(&mut self.out, b'D', |m| {
            m.put_u8(b'S');
            put_cstr(m, &name);
        });
        message(&mut self.out, b'S', |_| {});
        let answer = self.round_trip(|_, _| {}).await?;
        let params = answer
            .param_oids
            .iter()
            .map(|&oid| match Type::from_oid(oid) {
                Some(ty) if <Value as ToSql>::accepts(&ty) => Param::Binary(ty),
                _ => Param::Text,
            })
            .collect();
        Ok(Prepared { name, params })
    }

    /// Send what `out` holds and read the answer; the server's error is a
    /// failure.
    async fn round_trip(&mut self, each: impl FnMut(u8, &[u8])) -> Result<Answer, Failure> {
        self.stream
            .write_all(&self.out)
            .await
            .map_err(Failure::lost)?;
        let mut answer = self.answer(each).await?;
        match answer.error.take() {
            Some(error) => Err(Failure {
                error,
                lost: answer.fatal,
            }),
            None => Ok(answer),
        }
    }

    /// Read messages up to ReadyForQuery; `each` sees every message's type
    /// and body.
    async fn answer(&mut self, mut each: impl FnMut(u8, &[u8])) -> Result<Answer, Failure> {
        let mut answer = Answer::default();
        loop {
            let (t, from, to) = match self.message().await {
                Ok(m) => m,
                // A FATAL error (the backend terminated) comes before the
                // socket closes: the app saw that error.
                Err(e) => match answer.error {
                    Some(error) => return Err(Failure { error, lost: true }),
                    None => return Err(Failure::lost(e)),
                },
            };
            let body = &self.buf[from..to];
            match t {
                b'D' => answer.rows += 1,
                b'C' => {
                    // "SELECT 5", "UPDATE 3", "INSERT 0 1": rows are last.
                    if let Some(n) = cstr(body)
                        .and_then(|tag| tag.rsplit(' ').next())
                        .and_then(|n| n.parse().ok())
                    {
                        answer.rows = n;
                    }
                }
                b'E' => {
                    let fields = ErrorFields::parse(body);
                    answer.fatal = matches!(fields.severity, "FATAL" | "PANIC");
                    answer.error.get_or_insert(AppError {
                        sqlstate: fields.code.to_string(),
                        message: fields.message.to_string(),
                    });
                }
                b't' => answer.param_oids = param_oids(body),
                b'Z' => return Ok(answer),
                _ => {}
            }
            each(t, body);
            if matches!(t, b'G' | b'W') {
                // COPY FROM STDIN: the server now waits for data an app
                // query cannot give. Refuse it. The Sync sent with the
                // request was ignored in copy-in mode, so another follows:
                // the server answers it with the error and ReadyForQuery.
                let mut fail = BytesMut::new();
                message(&mut fail, b'f', |m| {
                    put_cstr(m, "pgrehearse app queries cannot send COPY data")
                });
                message(&mut fail, b'S', |_| {});
                self.stream.write_all(&fail).await.map_err(Failure::lost)?;
            }
        }
    }

    /// The next whole message: its type and where its body lies in `buf`.
    async fn message(&mut self) -> io::Result<(u8, usize, usize)> {
        loop {
            let have = self.end - self.start;
            if have >= 5 {
                let at = self.start;
                let len = u32::from_be_bytes([
                    self.buf[at + 1],
                    self.buf[at + 2],
                    self.buf[at + 3],
                    self.buf[at + 4],
                ]) as usize;
                if len < 4 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "malformed message from the server",
                    ));
                }
                if have > len {
                    self.start += 1 + len;
                    return Ok((self.buf[at], at + 5, at + 1 + len));
                }
                if 1 + len > self.buf.len() {
                    self.buf.resize((1 + len).next_power_of_two(), 0);
                }
            }
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            } else if self.end == self.buf.len() {
                self.buf.copy_within(self.start..self.end, 0);
                (self.start, self.end) = (0, self.end - self.start);
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection",
                ));
            }
            self.end += n;
        }
    }
}

/// Append a message of type `t` whose body `body` writes.
fn message(out: &mut BytesMut, t: u8, body: impl FnOnce(&mut BytesMut)) {
    out.put_u8(t);
    let at = out.len();
    out.put_i32(0);
    body(out);
    let len = (out.len() - at) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn put_cstr(out: &mut BytesMut, s: &str) {
    out.put_slice(s.as_bytes());
    out.put_u8(0);
}

/// Bind `params` to `statement` in the unnamed portal; results in text.
fn bind(out: &mut BytesMut, statement: &Prepared, params: &[Value]) -> Result<(), String> {
    if params.len() != statement.params.len() {
        return Err(format!(
            "the query takes {} parameters and {} were generated",
            statement.params.len(),
            params.len()
        ));
    }
    let mut failed = None;
    message(out, b'B', |m| {
        m.put_u8(0);
        put_cstr(m, &statement.name);
        m.put_i16(params.len() as i16);
        for p in &statement.params {
            m.put_i16(matches!(p, Param::Binary(_)) as i16);
        }
        m.put_i16(params.len() as i16);
        for (i, (value, param)) in params.iter().zip(&statement.params).enumerate() {
            if let Err(e) = bind_one(m, value, param) {
                failed.get_or_insert(format!("parameter ${}: {e}", i + 1));
            }
        }
        m.put_i16(0);
    });
    failed.map_or(Ok(()), Err)
}

/// One parameter: its length (-1 for NULL), then its bytes.
fn bind_one(
    out: &mut BytesMut,
    value: &Value,
    param: &Param,
) -> Result<(), Box<dyn std::error::Error + Sync + Send>> {
    let at = out.len();
    out.put_i32(0);
    let null = match param {
        Param::Binary(ty) => matches!(value.to_sql_checked(ty, out)?, IsNull::Yes),
        Param::Text if *value == Value::Null => true,
        Param::Text => {
            write!(out, "{value}")?;
            false
        }
    };
    let len = if null {
        out.truncate(at + 4);
        -1
    } else {
        (out.len() - at - 4) as i32
    };
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// A NUL-terminated string at the start of `b`.
fn cstr(b: &[u8]) -> Option<&str> {
    let end = b.iter().position(|&c| c == 0)?;
    std::str::from_utf8(&b[..end]).ok()
}

/// The first column of a DataRow, as text.
fn first_text_column(body: &[u8]) -> Option<&str> {
    let len = i32::from_be_bytes(body.get(2..6)?.try_into().ok()?);
    let len = usize::try_from(len).ok()?;
    std::str::from_utf8(body.get(6..6 + len)?).ok()
}

/// ParameterDescription: a count, then the type OIDs.
fn param_oids(body: &[u8]) -> Vec<u32> {
    body.get(2..)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The fields of an ErrorResponse the app's record needs.
struct ErrorFields<'a> {
    severity: &'a str,
    code: &'a str,
    message: &'a str,
}

impl<'a> ErrorFields<'a> {
    fn parse(mut body: &'a [u8]) -> ErrorFields<'a> {
        let mut f = ErrorFields {
            severity: "ERROR",
            code: "XX000",
            message: "",
        };
        while let [kind, rest @ ..] = body {
            if *kind == 0 {
                break;
            }
            let Some(end) = rest.iter().position(|&c| c == 0) else {
                break;
            };
            let value = std::str::from_utf8(&rest[..end]).unwrap_or("");
            match kind {
                // V: the severity never localized (9.6+); S may be.
                b'V' => f.severity = value,
                b'C' => f.code = value,
                b'M' => f.message = value,
                _ => {}
            }
            body = &rest[end + 1..];
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bind_message_holds_binary_and_text_parameters() {
        let statement = Prepared {
            name: "s".into(),
            params: vec![Param::Binary(Type::INT4), Param::Text, Param::Text],
        };
        let mut out = BytesMut::new();
        let params = [Value::Int(7), Value::Text("red".into()), Value::Null];
        bind(&mut out, &statement, &params).unwrap();
        let mut want = vec![b'B'];
        let body: Vec<u8> = [
            &b"\0s\0"[..],
            &[0, 3, 0, 1, 0, 0, 0, 0],
            &[0, 3],
            &[0, 0, 0, 4, 0, 0, 0, 7],
            &[0, 0, 0, 3],
            b"red",
            &[0xff, 0xff, 0xff, 0xff],
            &[0, 0],
        ]
        .concat();
        want.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
        want.extend(body);
        assert_eq!(&out[..], &want[..]);
    }

    #[test]
    fn a_value_that_does_not_fit_its_type_names_the_parameter() {
        let statement = Prepared {
            name: "s".into(),
            params: vec![Param::Binary(Type::INT2)],
        };
        let e = bind(&mut BytesMut::new(), &statement, &[Value::Int(70_000)]).unwrap_err();
        assert!(e.starts_with("parameter $1: "), "{e}");
    }

    #[test]
    fn error_fields_are_read_by_their_codes() {
        let body = b"SERROR\0VFATAL\0C57P01\0Mterminating connection\0\0";
        let f = ErrorFields::parse(body);
        assert_eq!(
            (f.severity, f.code, f.message),
            ("FATAL", "57P01", "terminating connection")
        );
    }
}
