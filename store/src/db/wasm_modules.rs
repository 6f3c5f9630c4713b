//! Uploaded WASI modules, content-addressed: the same bytes are stored once under one id.

use super::{Result, Store};

impl Store {
    /// Stores a WASI module under its id (the sha-256 of its bytes, hex); idempotent.
    pub fn put_wasm_module(&self, id: &str, wasm: &[u8]) -> Result<()> {
        self.wasm_modules.insert(id.as_bytes(), wasm)?;
        Ok(())
    }

    pub fn wasm_module(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.wasm_modules.get(id.as_bytes())?.map(|v| v.to_vec()))
    }

    pub fn has_wasm_module(&self, id: &str) -> bool {
        self.wasm_modules.contains_key(id.as_bytes()).unwrap_or(false)
    }
}
