//! `Group` with the real attribute: the registry names of children made
//! from one `#[supervised]` fn. (Signals: `second_signal.rs`.)

use std::time::Duration;

use supervised::{supervised, CancellationToken, Group, Registry, SubsystemKind};

#[supervised(name = "channel", tick = "1s")]
async fn channel(kind: &'static str, cancel: CancellationToken) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    while !cancel.is_cancelled() {
        tokio::select! {
            () = cancel.cancelled() => break,
            _ = ticker.tick() => {}
        }
        if kind == "slack" {
            // A supervised fn the child calls keeps its own name.
            helper().await;
        }
    }
}

#[supervised(name = "slack-helper")]
async fn helper() {
    #[allow(clippy::never_loop)]
    for _ in 0..1 {
        break;
    }
}

#[tokio::test(start_paused = true)]
async fn children_made_from_one_supervised_fn_register_under_their_child_names() {
    let registry = Registry::new();
    let cancel = CancellationToken::new();
    let run = tokio::spawn(
        Group::new("tenants")
            .registry(&registry)
            .child("channel/telegram", |cancel| channel("telegram", cancel))
            .child("channel/slack", |cancel| channel("slack", cancel))
            .run(cancel.clone()),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for name in ["channel/telegram", "channel/slack"] {
        let status = registry
            .get(name)
            .expect("registered under the child's name")
            .status();
        assert_eq!(status.beats, 3, "{name}: beats at 0 s, 1 s and 2 s");
        assert_eq!(
            status.tick,
            Some(Duration::from_secs(1)),
            "{name}: the attribute's tick"
        );
        assert_eq!(
            (status.kind, status.group.as_deref()),
            (SubsystemKind::Subsystem, Some("tenants"))
        );
    }
    assert!(
        registry.get("channel").is_none(),
        "not under the attribute's name in the group's registry"
    );
    assert!(
        supervised::registry().get("channel").is_none(),
        "nor in the process-wide one"
    );
    // The inner fn runs in the process-wide registry, under its own name.
    assert!(supervised::registry().get("slack-helper").is_some());
    assert!(registry.get("slack-helper").is_none());
    cancel.cancel();
    assert!(run.await.unwrap().is_clean());
}

#[supervised(name = "solo", tick = "1s")]
async fn solo(cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        cancel.cancelled().await;
    }
}

#[tokio::test(start_paused = true)]
async fn outside_a_group_the_attribute_name_applies() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    solo(cancel).await;
    let status = supervised::registry()
        .get("solo")
        .expect("the attribute's name")
        .status();
    assert_eq!(
        (status.kind, status.group),
        (SubsystemKind::Subsystem, None)
    );
}

#[tokio::test(start_paused = true)]
async fn a_subsystem_registered_in_the_factory_itself_takes_the_child_name_too() {
    static SUPERVISOR: supervised::Supervisor = supervised::Supervisor::new();
    let registry = Registry::new();
    let report = Group::new("by-hand")
        .registry(&registry)
        .child("hand-written", |cancel| {
            // Registered in the factory call, before any poll.
            let sub = SUPERVISOR.register("its-own-name");
            async move {
                SUPERVISOR
                    .run_registered(cancel, &sub, |_cancel| async {
                        supervised::beat();
                    })
                    .await;
            }
        })
        .run(CancellationToken::new())
        .await;
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(registry.get("hand-written").map(|s| s.beats()), Some(1));
    assert!(registry.get("its-own-name").is_none());
    assert!(supervised::registry().get("its-own-name").is_none());
}
