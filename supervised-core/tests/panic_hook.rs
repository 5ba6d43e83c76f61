//! The supervisor's panic hook chains to the application's and never
//! replaces it. Alone in its own binary: panic hooks are process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use supervised_core::{Registry, Supervisor};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn the_applications_hook_still_sees_supervised_panics_and_others() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    std::panic::set_hook(Box::new(move |_| {
        s.fetch_add(1, Ordering::SeqCst);
    }));

    let registry = Registry::new();
    let mut runs = 0;
    Supervisor::new()
        .registry(&registry)
        .run(CancellationToken::new(), "hooked", |_| {
            runs += 1;
            let n = runs;
            async move {
                if n < 3 {
                    panic!("run {n}");
                }
            }
        })
        .await;
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the app's hook saw both supervised panics"
    );
    let panic = registry.subsystem("hooked").status().last_panic.unwrap();
    assert!(panic.location.is_some(), "our hook ran too");

    // A panic outside any supervised body still reaches the app's hook.
    let _ = std::panic::catch_unwind(|| panic!("elsewhere"));
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}
