//! Page lifecycle: a file header with a free list and root slots, freeing
//! and reusing pages, and discarding cached pages.
//!
//! # Files with a header
//!
//! A file is *plain* (every page is the caller's; `allocate` appends) or
//! *formatted*: [`BufferPool::format_file`] makes page 0 of an empty file
//! its header, which holds the head of the file's free list and
//! [`ROOT_SLOTS`] root slots (page numbers an engine finds its structures
//! by, say a B+-tree's meta page). Whether a file is formatted is read from
//! page 0 the first time it matters (the first `allocate`, `free_page` or
//! root call), so a plain file pays nothing.
//!
//! | header (page 0) offset | size | field                                    |
//! |------------------------|------|------------------------------------------|
//! | 0                      | 8    | magic `b"PGPHEAD1"`                      |
//! | 8                      | 8    | format version (1)                       |
//! | 16                     | 8    | first free page number, or `u64::MAX`    |
//! | 24                     | 8    | free pages on the list                   |
//! | 64                     | 8 × [`ROOT_SLOTS`] | root slots (0 = empty; page 0 is never a root) |
//!
//! A free page holds `b"PGPFREE1"` at offset 0 and the next free page
//! number (or `u64::MAX`) at offset 8; the rest is zero.
//!
//! # Free list protocol
//!
//! The header's exclusive latch is the free list's lock: `free_page` and
//! `allocate` take it, and the page they change, and nothing else. Lock
//! order: the page being freed (the caller's guard) → the header → a free
//! page being reused. A freed page is not on the list until its mark is
//! written under that order, and a page on the list is latched only by an
//! `allocate` that holds the header, so neither call waits for a latch the
//! caller holds on any other page, or for another thread that waits for
//! one: neither deadlocks, whatever else the caller holds. (A caller that
//! holds the header itself gets [`Error::SelfDeadlock`].)
//!
//! Both pages change in memory and become durable with the next
//! `flush_all`, like any page. A crash before it can leave the header
//! pointing at a page whose free mark never reached the disk: `allocate`
//! checks the mark before it reuses a page, and on a missing one drops the
//! rest of the list (logging it: those pages leak, no data is lost) and
//! appends instead. A page is never handed out twice.
//!
//! [`Error::SelfDeadlock`]: crate::Error::SelfDeadlock

mod discard;
mod free_list;
mod header;

pub(crate) use header::HeaderState;
pub use header::ROOT_SLOTS;
