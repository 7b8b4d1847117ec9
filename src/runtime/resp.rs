//! A RESP2 front end for a [`KvStore`] group, enough for stock `redis-cli` and
//! `redis-benchmark`: `PING`, `GET` (a strong read), `SET`, `DEL`, `INCR`,
//! `EXISTS`; every other command is answered with an error.
//!
//! The machine's commands return no values, so `DEL` and `INCR` propose their
//! command with a fresh random tag ([`Group::request_tag`]); the store records
//! that command's own result under the tag as part of the replicated state, and
//! a strong [`KvQuery::Result`] reads it back once the command is applied. The
//! reply is exact under concurrent writes to the same key: two concurrent
//! `INCR`s answer 1 and 2, and only one of two concurrent `DEL`s of a key
//! counts it. `EXISTS` and `GET` are strong reads. A `DEL` of several keys is
//! one command per key, in order (not atomic). Each connection runs its
//! commands in order; pipelined requests are answered with one write per batch.

use std::io;
use std::net::SocketAddr;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

use super::group::{Group, GroupError};
use crate::examples::{KvCmd, KvQuery, KvResult, KvStore};
use crate::raft::Consistency;

/// The longest line (a command's header or an inline command).
pub const RESP_LINE_BYTES_MAX: usize = 64 * 1024;
/// The most arguments in one command.
pub const RESP_ARGUMENTS_MAX: usize = 1024;
/// The largest bulk string (a key or a value).
pub const RESP_BULK_BYTES_MAX: usize = 8 * 1024 * 1024;

/// Accepts RESP clients on `listener` forever, each served by its own task.
pub async fn serve(listener: TcpListener, group: Group<KvStore>) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let _ = stream.set_nodelay(true);
                let group = group.clone();
                tokio::spawn(async move {
                    if let Err(error) = serve_connection(stream, &group).await {
                        tracing::debug!(%remote, "RESP connection closed: {error}");
                    }
                });
            }
            Err(error) => {
                tracing::warn!("RESP accept failed: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

/// Binds `address` and serves RESP on it.
///
/// # Errors
///
/// A bind failure.
pub async fn listen(address: SocketAddr, group: Group<KvStore>) -> io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    serve(listener, group).await;
    Ok(())
}

async fn serve_connection(stream: TcpStream, group: &Group<KvStore>) -> io::Result<()> {
    // madsim's TcpStream has no owned halves.
    #[cfg(madsim)]
    let (reader, writer) = tokio::io::split(stream);
    #[cfg(not(madsim))]
    let (reader, writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    let mut writer = BufWriter::new(writer);
    loop {
        let arguments = match read_command(&mut reader).await {
            Ok(Some(arguments)) => arguments,
            Ok(None) => return Ok(()),
            Err(error) => {
                let reply = format!("-ERR Protocol error: {error}\r\n");
                writer.write_all(reply.as_bytes()).await?;
                writer.flush().await?;
                return Err(error);
            }
        };
        if arguments.is_empty() {
            continue;
        }
        let reply = execute(group, &arguments).await;
        writer.write_all(&reply).await?;
        if reader.buffer().is_empty() {
            writer.flush().await?;
        }
    }
}

fn invalid(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

/// Reads one line without its `\r\n`, at most [`RESP_LINE_BYTES_MAX`] long;
/// `None` at a clean end of stream.
async fn read_line<R: AsyncBufReadExt + Unpin>(reader: &mut R) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let read = (&mut *reader)
        .take(RESP_LINE_BYTES_MAX as u64 + 2)
        .read_until(b'\n', &mut line)
        .await?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(invalid("line too long or cut short"));
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(line))
}

fn parse_count(digits: &[u8], limit: usize) -> io::Result<usize> {
    let text = std::str::from_utf8(digits).map_err(|_| invalid("count is not text"))?;
    let count: usize = text.parse().map_err(|_| invalid("invalid count"))?;
    if count > limit {
        return Err(invalid(format!("{count} exceeds the limit of {limit}")));
    }
    Ok(count)
}

/// Reads one command: a RESP array of bulk strings, or an inline command.
async fn read_command<R: AsyncBufReadExt + Unpin>(
    reader: &mut R,
) -> io::Result<Option<Vec<Vec<u8>>>> {
    let Some(line) = read_line(reader).await? else {
        return Ok(None);
    };
    let Some(rest) = line.strip_prefix(b"*") else {
        let words = line
            .split(|byte| byte.is_ascii_whitespace())
            .filter(|word| !word.is_empty())
            .map(<[u8]>::to_vec)
            .take(RESP_ARGUMENTS_MAX)
            .collect();
        return Ok(Some(words));
    };
    let count = parse_count(rest, RESP_ARGUMENTS_MAX)?;
    let mut arguments = Vec::with_capacity(count);
    for _ in 0..count {
        let header = read_line(reader)
            .await?
            .ok_or_else(|| invalid("cut short"))?;
        let length = header
            .strip_prefix(b"$")
            .ok_or_else(|| invalid("expected a bulk string"))?;
        let length = parse_count(length, RESP_BULK_BYTES_MAX)?;
        let mut bulk = vec![0u8; length + 2];
        reader.read_exact(&mut bulk).await?;
        if !bulk.ends_with(b"\r\n") {
            return Err(invalid("bulk string not terminated"));
        }
        bulk.truncate(length);
        arguments.push(bulk);
    }
    Ok(Some(arguments))
}

fn text(bytes: &[u8]) -> Result<String, Vec<u8>> {
    String::from_utf8(bytes.to_vec()).map_err(|_| error_reply("keys and values must be UTF-8"))
}

fn error_reply(message: &str) -> Vec<u8> {
    format!("-ERR {message}\r\n").into_bytes()
}

fn group_error(error: &GroupError) -> Vec<u8> {
    match error {
        GroupError::Unknown | GroupError::SessionExpired => {
            b"-TRYAGAIN outcome unknown: the write may still be applied\r\n".to_vec()
        }
        GroupError::Offline => b"-CLUSTERDOWN no leader known\r\n".to_vec(),
        other => error_reply(&other.to_string()),
    }
}

fn bulk(value: Option<&str>) -> Vec<u8> {
    match value {
        None => b"$-1\r\n".to_vec(),
        Some(value) => format!("${}\r\n{value}\r\n", value.len()).into_bytes(),
    }
}

fn integer(value: i64) -> Vec<u8> {
    format!(":{value}\r\n").into_bytes()
}

async fn strong_get(group: &Group<KvStore>, key: &str) -> Result<Option<String>, Vec<u8>> {
    group
        .query(KvQuery::Get { key: key.into() }, Consistency::Strong)
        .await
        .map(|answer| answer.result)
        .map_err(|error| group_error(&error))
}

/// Executes the command `command(tag)` under a fresh tag and returns the result
/// the store recorded for it.
///
/// Once the command is applied, a failure to read its result is an error that
/// says the write happened, never `TRYAGAIN`: running it again would apply it
/// twice.
async fn execute_tagged(
    group: &Group<KvStore>,
    command: impl FnOnce(Option<u64>) -> KvCmd,
) -> Result<KvResult, Vec<u8>> {
    let tag = group.request_tag();
    group
        .execute(command(Some(tag)))
        .await
        .map_err(|error| group_error(&error))?;
    let answer = group
        .query(KvQuery::Result { tag }, Consistency::Strong)
        .await
        .map_err(|error| error_reply(&format!("applied, but its result is unknown: {error}")))?;
    answer
        .result
        .as_deref()
        .and_then(KvResult::decode)
        .ok_or_else(|| error_reply("applied, but its result was evicted before it was read"))
}

/// Runs one command and returns its reply.
async fn execute(group: &Group<KvStore>, arguments: &[Vec<u8>]) -> Vec<u8> {
    match run(group, arguments).await {
        Ok(reply) | Err(reply) => reply,
    }
}

async fn run(group: &Group<KvStore>, arguments: &[Vec<u8>]) -> Result<Vec<u8>, Vec<u8>> {
    let name = String::from_utf8_lossy(&arguments[0]).to_ascii_uppercase();
    let arguments = &arguments[1..];
    let wrong_arity = || error_reply(&format!("wrong number of arguments for '{name}' command"));
    match name.as_str() {
        "PING" => match arguments {
            [] => Ok(b"+PONG\r\n".to_vec()),
            [message] => Ok(bulk(Some(&text(message)?))),
            _ => Err(wrong_arity()),
        },
        "GET" => {
            let [key] = arguments else {
                return Err(wrong_arity());
            };
            Ok(bulk(strong_get(group, &text(key)?).await?.as_deref()))
        }
        "SET" => {
            let [key, value] = arguments else {
                return Err(if arguments.len() > 2 {
                    error_reply("SET options are not supported")
                } else {
                    wrong_arity()
                });
            };
            let command = KvCmd::Put {
                key: text(key)?,
                value: text(value)?,
            };
            group.execute(command).await.map_err(|e| group_error(&e))?;
            Ok(b"+OK\r\n".to_vec())
        }
        "DEL" => {
            if arguments.is_empty() {
                return Err(wrong_arity());
            }
            let keys = arguments
                .iter()
                .map(|key| text(key))
                .collect::<Result<Vec<_>, _>>()?;
            let mut removed: i64 = 0;
            for key in keys {
                match execute_tagged(group, |tag| KvCmd::Delete { key, tag }).await? {
                    KvResult::Integer(count) => removed += count,
                    other => return Err(error_reply(&format!("unexpected result {other:?}"))),
                }
            }
            Ok(integer(removed))
        }
        "EXISTS" => {
            if arguments.is_empty() {
                return Err(wrong_arity());
            }
            let mut present = 0;
            for key in arguments {
                if strong_get(group, &text(key)?).await?.is_some() {
                    present += 1;
                }
            }
            Ok(integer(present))
        }
        "INCR" => {
            let [key] = arguments else {
                return Err(wrong_arity());
            };
            let key = text(key)?;
            let command = |tag| KvCmd::Increment { key, by: 1, tag };
            match execute_tagged(group, command).await? {
                KvResult::Integer(value) => Ok(integer(value)),
                KvResult::NotAnInteger => {
                    Err(error_reply("value is not an integer or out of range"))
                }
                KvResult::Overflow => Err(error_reply("increment or decrement would overflow")),
            }
        }
        _ => Err(error_reply(&format!("unknown command '{name}'"))),
    }
}
