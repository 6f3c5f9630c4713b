//! `__troupe_native`: what the Node layer of npm pieces cannot do well in JavaScript, done in
//! Rust inside the guest (nothing here reaches the host but `random`, through WASI).
//!
//! Bytes cross as `Uint8Array`s. Each function throws a `TypeError` on input it cannot take.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rquickjs::{Ctx, Exception, Function, Object, Result, TypedArray};
use sha2::Digest;
use std::io::{Read, Write};

pub fn install(ctx: &Ctx<'_>) -> Result<()> {
    let native = Object::new(ctx.clone())?;
    native.set("hash", Function::new(ctx.clone(), hash)?)?;
    native.set("hmac", Function::new(ctx.clone(), hmac)?)?;
    native.set("utf8Encode", Function::new(ctx.clone(), utf8_encode)?)?;
    native.set("utf8Decode", Function::new(ctx.clone(), utf8_decode)?)?;
    native.set("base64Encode", Function::new(ctx.clone(), base64_encode)?)?;
    native.set("base64Decode", Function::new(ctx.clone(), base64_decode)?)?;
    native.set("zlib", Function::new(ctx.clone(), zlib)?)?;
    native.set("url", Function::new(ctx.clone(), parse_url)?)?;
    native.set("random", Function::new(ctx.clone(), random)?)?;
    native.set("punycode", Function::new(ctx.clone(), punycode)?)?;
    ctx.globals().set("__troupe_native", native)
}

fn bytes<'a>(array: &'a TypedArray<'_, u8>) -> &'a [u8] {
    array.as_bytes().unwrap_or(&[])
}

fn type_error(ctx: &Ctx<'_>, message: &str) -> rquickjs::Error {
    Exception::throw_type(ctx, message)
}

fn digest(ctx: &Ctx<'_>, algorithm: &str, data: &[u8]) -> Result<Vec<u8>> {
    Ok(match algorithm.to_ascii_lowercase().replace('-', "").as_str() {
        "md5" => md5::Md5::digest(data).to_vec(),
        "sha1" => sha1::Sha1::digest(data).to_vec(),
        "sha224" => sha2::Sha224::digest(data).to_vec(),
        "sha256" => sha2::Sha256::digest(data).to_vec(),
        "sha384" => sha2::Sha384::digest(data).to_vec(),
        "sha512" => sha2::Sha512::digest(data).to_vec(),
        _ => return Err(type_error(ctx, &format!("Digest method not supported: {algorithm}"))),
    })
}

fn hash<'js>(ctx: Ctx<'js>, algorithm: String, data: TypedArray<'js, u8>) -> Result<TypedArray<'js, u8>> {
    let out = digest(&ctx, &algorithm, bytes(&data))?;
    TypedArray::new(ctx, out)
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

fn hmac<'js>(
    ctx: Ctx<'js>,
    algorithm: String,
    key: TypedArray<'js, u8>,
    data: TypedArray<'js, u8>,
) -> Result<TypedArray<'js, u8>> {
    let (key, data) = (bytes(&key), bytes(&data));
    let out = match algorithm.to_ascii_lowercase().replace('-', "").as_str() {
        "md5" => mac::<Hmac<md5::Md5>>(key, data),
        "sha1" => mac::<Hmac<sha1::Sha1>>(key, data),
        "sha224" => mac::<Hmac<sha2::Sha224>>(key, data),
        "sha256" => mac::<Hmac<sha2::Sha256>>(key, data),
        "sha384" => mac::<Hmac<sha2::Sha384>>(key, data),
        "sha512" => mac::<Hmac<sha2::Sha512>>(key, data),
        _ => return Err(type_error(&ctx, &format!("Invalid digest: {algorithm}"))),
    };
    TypedArray::new(ctx, out)
}

fn utf8_encode<'js>(ctx: Ctx<'js>, text: rquickjs::String<'js>) -> Result<TypedArray<'js, u8>> {
    // lone surrogates become U+FFFD, as TextEncoder does
    let text = text.to_string().unwrap_or_else(|_| String::from('\u{FFFD}'));
    TypedArray::new(ctx, text.into_bytes())
}

fn utf8_decode(data: TypedArray<'_, u8>) -> String {
    String::from_utf8_lossy(bytes(&data)).into_owned()
}

fn base64_encode(data: TypedArray<'_, u8>, url_safe: Option<bool>) -> String {
    if url_safe.unwrap_or(false) {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes(&data))
    } else {
        base64::engine::general_purpose::STANDARD.encode(bytes(&data))
    }
}

/// Node's lenient decoding: either alphabet, padding optional, whitespace and anything after
/// the first `=` ignored.
fn base64_decode<'js>(ctx: Ctx<'js>, text: String) -> Result<TypedArray<'js, u8>> {
    let clean: String = text
        .split('=')
        .next()
        .unwrap_or("")
        .chars()
        .filter_map(|c| match c {
            '-' => Some('+'),
            '_' => Some('/'),
            c if c.is_ascii_alphanumeric() || c == '+' || c == '/' => Some(c),
            _ => None,
        })
        .collect();
    // a dangling single character carries no whole byte
    let usable = if clean.len() % 4 == 1 { &clean[..clean.len() - 1] } else { &clean[..] };
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let out = engine.decode(usable).map_err(|e| type_error(&ctx, &format!("invalid base64: {e}")))?;
    TypedArray::new(ctx, out)
}

/// `zlib(op, data, level)`: op is one of `gzip`, `gunzip`, `deflate`, `inflate`,
/// `deflateRaw`, `inflateRaw`, `brotliDecompress`, `unzip` (gzip or zlib, by header).
fn zlib<'js>(ctx: Ctx<'js>, op: String, data: TypedArray<'js, u8>, level: Option<u32>) -> Result<TypedArray<'js, u8>> {
    use flate2::{read, write, Compression};
    let input = bytes(&data);
    let level = Compression::new(level.unwrap_or(6).min(9));
    let mut out = Vec::new();
    let done = match op.as_str() {
        "gzip" => write::GzEncoder::new(&mut out, level).write_all(input).map(|_| ()),
        "deflate" => write::ZlibEncoder::new(&mut out, level).write_all(input).map(|_| ()),
        "deflateRaw" => write::DeflateEncoder::new(&mut out, level).write_all(input).map(|_| ()),
        "gunzip" => read::MultiGzDecoder::new(input).read_to_end(&mut out).map(|_| ()),
        "inflate" => read::ZlibDecoder::new(input).read_to_end(&mut out).map(|_| ()),
        "inflateRaw" => read::DeflateDecoder::new(input).read_to_end(&mut out).map(|_| ()),
        "unzip" if input.starts_with(&[0x1f, 0x8b]) => read::MultiGzDecoder::new(input).read_to_end(&mut out).map(|_| ()),
        "unzip" => read::ZlibDecoder::new(input).read_to_end(&mut out).map(|_| ()),
        "brotliDecompress" => {
            brotli_decompressor::Decompressor::new(input, 4096).read_to_end(&mut out).map(|_| ())
        }
        _ => return Err(type_error(&ctx, &format!("zlib: {op} is not supported in the sandbox"))),
    };
    // the encoders finish when dropped above; a decoder's error is the data's
    done.map_err(|e| type_error(&ctx, &format!("{op}: {e}")))?;
    TypedArray::new(ctx, out)
}

/// A WHATWG URL's parts, or `null` when `input` (against `base`) is not a URL.
/// Node's `punycode`: `encode`/`decode` of one label's raw punycode, `toASCII`/`toUnicode` of
/// a domain (IDNA). `None` when the input cannot be converted.
fn punycode(op: String, text: String) -> Option<String> {
    match op.as_str() {
        "encode" => idna::punycode::encode_str(&text),
        "decode" => idna::punycode::decode_to_string(&text),
        "toASCII" => idna::domain_to_ascii(&text).ok(),
        "toUnicode" => Some(idna::domain_to_unicode(&text).0),
        _ => None,
    }
}

fn parse_url<'js>(ctx: Ctx<'js>, input: String, base: Option<String>) -> Result<Option<Object<'js>>> {
    let parsed = match base {
        Some(base) => url::Url::parse(&base).and_then(|b| b.join(&input)),
        None => url::Url::parse(&input),
    };
    let Ok(u) = parsed else { return Ok(None) };
    let o = Object::new(ctx)?;
    o.set("href", u.as_str())?;
    o.set("protocol", format!("{}:", u.scheme()))?;
    o.set("username", u.username())?;
    o.set("password", u.password().unwrap_or(""))?;
    o.set("hostname", u.host_str().unwrap_or(""))?;
    o.set("port", u.port().map(|p| p.to_string()).unwrap_or_default())?;
    o.set("pathname", u.path())?;
    o.set("search", u.query().filter(|q| !q.is_empty()).map(|q| format!("?{q}")).unwrap_or_default())?;
    o.set("hash", u.fragment().filter(|f| !f.is_empty()).map(|f| format!("#{f}")).unwrap_or_default())?;
    o.set("origin", u.origin().ascii_serialization())?;
    Ok(Some(o))
}

fn random<'js>(ctx: Ctx<'js>, len: u32) -> Result<TypedArray<'js, u8>> {
    let mut out = vec![0u8; len as usize];
    getrandom::fill(&mut out).map_err(|e| type_error(&ctx, &format!("no randomness: {e}")))?;
    TypedArray::new(ctx, out)
}
