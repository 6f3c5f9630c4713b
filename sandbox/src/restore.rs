//! Putting a used JS engine instance's memory back to the snapshot, touching only what can
//! differ.
//!
//! The snapshot's image is mostly zero pages (QuickJS's heap and stack before any code runs).
//! A reset writes the image's non-zero pages back (a few hundred KiB), then asks the kernel
//! which of the zero pages are mapped (`/proc/self/pagemap`): only a page the last execution
//! touched can be mapped, since every reset gives the zero pages back with
//! `madvise(MADV_DONTNEED)`, after which they read as zeros again. Without a readable pagemap
//! the whole image is written.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::LazyLock;

const OS_PAGE: usize = 4096;

/// The kernel's page table of this process, where pages are 4 KiB (elsewhere, whole copies).
static PAGEMAP: LazyLock<Option<File>> = LazyLock::new(|| {
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    (page == OS_PAGE as libc::c_long).then(|| File::open("/proc/self/pagemap").ok()).flatten()
});

/// Where the image has data: byte ranges of non-zero OS pages, and which pages are all zero.
pub struct Layout {
    nonzero: Vec<Range<usize>>,
    zero: Vec<bool>,
}

impl Layout {
    pub fn of(image: &[u8]) -> Layout {
        let zero: Vec<bool> = image.chunks(OS_PAGE).map(|p| p.iter().all(|&b| b == 0)).collect();
        let mut nonzero: Vec<Range<usize>> = Vec::new();
        for (i, _) in zero.iter().enumerate().filter(|(_, z)| !**z) {
            let (start, end) = (i * OS_PAGE, ((i + 1) * OS_PAGE).min(image.len()));
            match nonzero.last_mut() {
                Some(r) if r.end == start => r.end = end,
                _ => nonzero.push(start..end),
            }
        }
        Layout { nonzero, zero }
    }

    /// Bytes a reset always writes.
    pub fn nonzero_bytes(&self) -> usize {
        self.nonzero.iter().map(|r| r.len()).sum()
    }
}

/// Makes `memory[..image.len()]` equal to `image`.
///
/// # Safety
/// `memory` must point to a page-aligned, writable anonymous private mapping of at least
/// `image.len()` bytes that nothing else reads or writes during the call (the instance is
/// between two executions, owned by the calling thread).
pub unsafe fn reset(memory: *mut u8, image: &[u8], layout: &Layout) {
    let mapped = PAGEMAP.as_ref().and_then(|f| mapped_pages(f, memory as usize, layout.zero.len()));
    let Some(mapped) = mapped else {
        // SAFETY: the caller guarantees `image.len()` writable bytes at `memory`.
        unsafe { std::ptr::copy_nonoverlapping(image.as_ptr(), memory, image.len()) };
        return;
    };
    for r in &layout.nonzero {
        // SAFETY: `r` lies within the image, hence within the mapping.
        unsafe { std::ptr::copy_nonoverlapping(image.as_ptr().add(r.start), memory.add(r.start), r.len()) };
    }
    let mut i = 0;
    while i < layout.zero.len() {
        if !(layout.zero[i] && mapped[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < layout.zero.len() && layout.zero[i] && mapped[i] {
            i += 1;
        }
        let (at, len) = (start * OS_PAGE, ((i * OS_PAGE).min(image.len())) - start * OS_PAGE);
        // SAFETY: a page-aligned range inside the caller's private anonymous mapping; after
        // MADV_DONTNEED it reads as zeros, which is what the image holds there.
        let rc = unsafe { libc::madvise(memory.add(at).cast(), len, libc::MADV_DONTNEED) };
        if rc != 0 {
            // SAFETY: as above; zeroing by hand gives the same contents.
            unsafe { std::ptr::write_bytes(memory.add(at), 0, len) };
        }
    }
}

/// Whether each of `pages` OS pages from `addr` is mapped (present or swapped).
fn mapped_pages(pagemap: &File, addr: usize, pages: usize) -> Option<Vec<bool>> {
    let mut raw = vec![0u8; pages * 8];
    pagemap.read_exact_at(&mut raw, (addr / OS_PAGE * 8) as u64).ok()?;
    Some(raw.chunks_exact(8).map(|e| u64::from_le_bytes(e.try_into().expect("8 bytes")) & (3 << 62) != 0).collect())
}

/// A large image kept in a memory file and mapped copy-on-write over an instance's memory:
/// starting an instance writes nothing (pages come from the file when first touched), and
/// every instance shares the file's pages, so a loaded piece costs its image once however
/// many instances run it.
///
/// A reset copies the image back over the pages the instance has copied (the kernel's page
/// table says which: present and no longer the file's), and leaves the pages it only read
/// mapped. An instance thus reaches a steady state where an execution takes no page fault and
/// a reset copies its working set, instead of dropping and faulting it in again every time.
pub struct CowImage {
    file: File,
    len: usize,
    /// The file mapped read-only in the host: where resets copy from.
    view: *const u8,
}

// SAFETY: `view` is a read-only shared mapping owned by the image, never written.
unsafe impl Send for CowImage {}
// SAFETY: as above; reading it from several threads is fine.
unsafe impl Sync for CowImage {}

impl CowImage {
    /// The image in a new memory file, its zero pages left as holes (they cost nothing);
    /// `None` where memory files do not exist.
    pub fn new(image: &[u8], layout: &Layout) -> Option<CowImage> {
        use std::os::fd::{AsRawFd, FromRawFd};
        // SAFETY: a plain syscall with a NUL-terminated name; the result is checked.
        let fd = unsafe { libc::memfd_create(c"troupe-js-image".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        file.set_len(image.len() as u64).ok()?;
        for r in &layout.nonzero {
            file.write_all_at(&image[r.clone()], r.start as u64).ok()?;
        }
        // SAFETY: a new read-only shared mapping of the whole file; checked for failure.
        let view = unsafe {
            libc::mmap(std::ptr::null_mut(), image.len(), libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)
        };
        if view == libc::MAP_FAILED {
            return None;
        }
        Some(CowImage { file, len: image.len(), view: view.cast() })
    }

    /// Bytes of the image.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Maps the image over `memory[..len]`, private and copy-on-write.
    ///
    /// # Safety
    /// `memory` must be the page-aligned start of a Wasm linear memory of at least `len`
    /// bytes whose base never moves (Wasmer's static memories), between two executions.
    pub unsafe fn map_over(&self, memory: *mut u8) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: replaces pages inside the caller's mapping with the same protection.
        let p = unsafe {
            libc::mmap(
                memory.cast(),
                self.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                self.file.as_raw_fd(),
                0,
            )
        };
        p == memory.cast()
    }

    /// Puts `memory[..len]`, mapped by [`CowImage::map_over`], back to the image.
    ///
    /// # Safety
    /// As for [`CowImage::map_over`], on a memory this image was mapped over.
    pub unsafe fn reset(&self, memory: *mut u8) -> bool {
        let pages = self.len.div_ceil(OS_PAGE);
        let Some(copied) = PAGEMAP.as_ref().and_then(|f| copied_pages(f, memory as usize, pages)) else {
            // SAFETY: a range of the caller's private file mapping; it reads as the file after.
            return unsafe { libc::madvise(memory.cast(), self.len, libc::MADV_DONTNEED) == 0 };
        };
        let mut i = 0;
        while i < pages {
            if !copied[i] {
                i += 1;
                continue;
            }
            let start = i;
            while i < pages && copied[i] {
                i += 1;
            }
            let (at, end) = (start * OS_PAGE, (i * OS_PAGE).min(self.len));
            // SAFETY: both ranges lie within `len` bytes of their mappings, which do not
            // overlap; nothing runs in the instance meanwhile.
            unsafe { std::ptr::copy_nonoverlapping(self.view.add(at), memory.add(at), end - at) };
        }
        true
    }
}

impl Drop for CowImage {
    fn drop(&mut self) {
        // SAFETY: unmapping the view `new` mapped; nothing reads it any more.
        unsafe { libc::munmap(self.view as *mut libc::c_void, self.len) };
    }
}

/// Whether each of `pages` OS pages from `addr` holds a private copy: present or swapped, and
/// not a page of the file (pagemap bit 61).
fn copied_pages(pagemap: &File, addr: usize, pages: usize) -> Option<Vec<bool>> {
    let mut raw = vec![0u8; pages * 8];
    pagemap.read_exact_at(&mut raw, (addr / OS_PAGE * 8) as u64).ok()?;
    Some(
        raw.chunks_exact(8)
            .map(|e| {
                let e = u64::from_le_bytes(e.try_into().expect("8 bytes"));
                e & (3 << 62) != 0 && e & (1 << 61) == 0
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An anonymous private mapping, like a Wasm memory.
    struct Map(*mut u8, usize);

    impl Map {
        fn new(len: usize) -> Map {
            // SAFETY: a fresh anonymous mapping; checked for failure.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            Map(p.cast(), len)
        }
        fn bytes(&mut self) -> &mut [u8] {
            // SAFETY: the mapping is `self.1` bytes, owned by `self`.
            unsafe { std::slice::from_raw_parts_mut(self.0, self.1) }
        }
    }

    impl Drop for Map {
        fn drop(&mut self) {
            // SAFETY: unmapping what `new` mapped.
            unsafe { libc::munmap(self.0.cast(), self.1) };
        }
    }

    #[test]
    fn a_scribbled_memory_is_put_back_to_the_image() {
        let len = 64 * OS_PAGE;
        let mut image = vec![0u8; len];
        image[5 * OS_PAGE + 7] = 1;
        image[6 * OS_PAGE..8 * OS_PAGE].fill(0xab);
        image[len - 1] = 9;
        let layout = Layout::of(&image);
        assert_eq!(layout.nonzero_bytes(), 4 * OS_PAGE);
        let mut map = Map::new(len);
        map.bytes().copy_from_slice(&image);
        for round in 0..3u8 {
            // an execution writes all over: data pages, zero pages, a page it had not touched
            let mem = map.bytes();
            mem[6 * OS_PAGE + 100] = round;
            mem[20 * OS_PAGE..23 * OS_PAGE].fill(0x55 + round);
            mem[(40 + round as usize) * OS_PAGE] = 3;
            mem[len - 1] = 0;
            // SAFETY: the mapping is ours and `len` long.
            unsafe { reset(map.0, &image, &layout) };
            // the zero pages it touched were given back to the kernel (reading them below maps
            // the kernel's shared zero page, which the next reset gives back again)
            let mapped = mapped_pages(PAGEMAP.as_ref().expect("pagemap"), map.0 as usize, 64).unwrap();
            assert!(!mapped[20] && !mapped[22] && !mapped[40 + round as usize], "touched zero pages are still mapped");
            assert!(mapped[6], "a data page was unmapped");
            assert!(map.bytes() == image.as_slice(), "round {round}: the memory differs from the image");
        }
    }

    #[test]
    fn a_copy_on_write_image_is_put_back_and_keeps_what_was_only_read() {
        let len = 64 * OS_PAGE;
        let mut image = vec![0u8; len];
        image[3 * OS_PAGE..5 * OS_PAGE].fill(7);
        image[len - 1] = 9;
        let cow = CowImage::new(&image, &Layout::of(&image)).expect("memfd");
        let mut map = Map::new(len);
        // SAFETY: the mapping is ours, page aligned and `len` long.
        assert!(unsafe { cow.map_over(map.0) });
        assert!(map.bytes() == image.as_slice(), "mapped, it reads as the image");
        for round in 0..3u8 {
            let mem = map.bytes();
            mem[3 * OS_PAGE + 1] = round;
            mem[30 * OS_PAGE..32 * OS_PAGE].fill(0x55);
            mem[len - 1] = round;
            let read = mem[4 * OS_PAGE];
            assert_eq!(read, 7);
            // SAFETY: as above, the image was mapped over it.
            assert!(unsafe { cow.reset(map.0) });
            assert!(map.bytes() == image.as_slice(), "round {round}: the memory differs from the image");
            let pagemap = PAGEMAP.as_ref().expect("pagemap");
            let copied = copied_pages(pagemap, map.0 as usize, 64).unwrap();
            assert!(!copied[4], "a page only read is still the file's");
        }
    }
}
