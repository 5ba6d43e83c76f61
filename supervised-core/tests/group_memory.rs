//! Adding and removing children does not leak memory: a global allocator
//! that tracks live heap bytes, read after a warm-up round of 1,000 adds
//! and removes (which sizes the group's maps and the channel) and again
//! after 10,000 more. A leak of one entry, one task or one boxed factory
//! per child would be hundreds of kilobytes at least.

// A global allocator cannot be written without `unsafe`; the workspace
// denies it everywhere else.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use supervised_core::{CancellationToken, Child, Group, Registry};

/// The system allocator, keeping a count of the bytes live.
struct Tracking;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counter is
// one atomic add, which does not allocate.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOC: Tracking = Tracking;

async fn churn(handle: &supervised_core::GroupHandle, round: usize, children: usize) {
    let worker = |cancel: CancellationToken| async move { cancel.cancelled().await };
    for i in 0..children {
        handle
            .add(Child::new(format!("tenant-{round}-{i}"), worker))
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    for i in 0..children {
        handle.remove(&format!("tenant-{round}-{i}")).await.unwrap();
    }
}

#[test]
fn ten_thousand_adds_and_removes_leave_the_heap_as_they_found_it() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    runtime.block_on(async {
        let registry = Registry::new();
        let group = Group::new("churn").registry(&registry);
        let handle = group.handle();
        let cancel = CancellationToken::new();
        let run = tokio::spawn(group.run(cancel.clone()));
        churn(&handle, 0, 1_000).await;
        let warm = LIVE.load(Ordering::Relaxed);
        for round in 1..=10 {
            churn(&handle, round, 1_000).await;
        }
        let after = LIVE.load(Ordering::Relaxed);
        let grown = after - warm;
        assert!(
            grown < 64 * 1024,
            "{grown} bytes more live after 10,000 adds and removes (warm: {warm}, after: {after})"
        );
        assert_eq!(registry.snapshot().len(), 1);
        cancel.cancel();
        assert!(run.await.unwrap().is_clean());
    });
}
