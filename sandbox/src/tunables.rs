//! The memory cap: Wasmer tunables that clamp every linear memory's maximum.

use std::ptr::NonNull;
use wasmer::sys::vm::{VMMemory, VMMemoryDefinition, VMTable, VMTableDefinition};
use wasmer::sys::{BaseTunables, Tunables};
use wasmer::{MemoryError, MemoryStyle, TableStyle};
use wasmer::{MemoryType, Pages, TableType};

/// Wraps Wasmer's defaults; a memory may grow to `max` pages and no further (`memory.grow`
/// returns -1), and a module that asks for more at start cannot be instantiated.
pub struct LimitingTunables {
    base: BaseTunables,
    max: Pages,
}

impl LimitingTunables {
    pub fn new(max: Pages) -> LimitingTunables {
        LimitingTunables { base: BaseTunables::new(), max }
    }

    fn clamp(&self, ty: &MemoryType) -> MemoryType {
        let mut ty = *ty;
        ty.maximum = Some(ty.maximum.map_or(self.max, |m| m.min(self.max)));
        ty
    }

    fn check(&self, ty: &MemoryType) -> Result<(), MemoryError> {
        if ty.minimum > self.max {
            return Err(MemoryError::Generic(format!(
                "the module needs {} pages of memory at start; the sandbox allows {} ({} MiB)",
                ty.minimum.0,
                self.max.0,
                self.max.0 as u64 * 64 / 1024
            )));
        }
        Ok(())
    }
}

impl Tunables for LimitingTunables {
    fn memory_style(&self, memory: &MemoryType) -> MemoryStyle {
        self.base.memory_style(&self.clamp(memory))
    }

    fn table_style(&self, table: &TableType) -> TableStyle {
        self.base.table_style(table)
    }

    fn create_host_memory(&self, ty: &MemoryType, style: &MemoryStyle) -> Result<VMMemory, MemoryError> {
        let ty = self.clamp(ty);
        self.check(&ty)?;
        self.base.create_host_memory(&ty, style)
    }

    unsafe fn create_vm_memory(
        &self,
        ty: &MemoryType,
        style: &MemoryStyle,
        vm_definition_location: NonNull<VMMemoryDefinition>,
    ) -> Result<VMMemory, MemoryError> {
        let ty = self.clamp(ty);
        self.check(&ty)?;
        // SAFETY: forwarded as received; Wasmer guarantees the location.
        unsafe { self.base.create_vm_memory(&ty, style, vm_definition_location) }
    }

    fn create_host_table(&self, ty: &TableType, style: &TableStyle) -> Result<VMTable, String> {
        self.base.create_host_table(ty, style)
    }

    unsafe fn create_vm_table(
        &self,
        ty: &TableType,
        style: &TableStyle,
        vm_definition_location: NonNull<VMTableDefinition>,
    ) -> Result<VMTable, String> {
        // SAFETY: forwarded as received; Wasmer guarantees the location.
        unsafe { self.base.create_vm_table(ty, style, vm_definition_location) }
    }
}
