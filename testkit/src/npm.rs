//! npm package archives made in a test: a `.tgz` as `npm pack` makes it.

/// A gzipped tar with `files` (path, contents) under `package/`.
pub fn pack(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, format!("package/{path}"), *bytes).expect("appends to memory");
    }
    let tar = builder.into_inner().expect("a tar in memory");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).expect("writes to memory");
    gz.finish().expect("a gzip in memory")
}
