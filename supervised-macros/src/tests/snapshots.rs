//! Expansion snapshots: what `#[supervised]` generates for representative
//! inputs, pretty-printed so a reviewer can read it. Update with
//! `INSTA_UPDATE=always cargo test -p supervised-macros` (or `cargo insta
//! review`) after an intended change to the expansion.

use quote::quote;

fn expand(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> String {
    let out = crate::supervised2(args, item);
    match syn::parse2::<syn::File>(out.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(e) => panic!("expansion does not parse ({e}):\n{out}"),
    }
}

#[test]
fn scheduler_with_tick_and_token() {
    insta::assert_snapshot!(expand(
        quote!(name = "scheduler", tick = "60s"),
        quote! {
            /// Fires due cron jobs.
            pub async fn scheduler(db: Db, cancel: CancellationToken) {
                let mut ticker = tokio::time::interval(Duration::from_secs(60));
                loop {
                    ticker.tick().await;
                    fire_due_jobs(&db).await;
                }
            }
        }
    ));
}

#[test]
fn result_with_every_knob() {
    insta::assert_snapshot!(expand(
        quote!(
            tick = "30s",
            stale_after = "90s",
            initial_backoff = "250ms",
            max_backoff = "10s",
            jitter,
            stop_timeout = "2s",
            max_restarts = 5,
            within = "1m",
            crate = "::platform::supervised"
        ),
        quote! {
            async fn sweep(cancel: CancellationToken) -> Result<(), SweepError> {
                while !cancel.is_cancelled() {
                    sweep_once().await?;
                }
                Ok(())
            }
        }
    ));
}

#[test]
fn kept_arguments_are_lent_to_each_run() {
    insta::assert_snapshot!(expand(
        quote!(name = "relay", keep(self, rx)),
        quote! {
            async fn relay(mut self, mut rx: Receiver<Job>, cancel: CancellationToken) {
                while let Some(job) = rx.recv().await {
                    self.handle(job).await;
                }
            }
        }
    ));
}

/// What `#[async_trait]` (0.1.92) makes of
/// `async fn drain(&self, mut rx: Receiver<Job>, cancel: CancellationToken) -> Result<(), E>`.
#[test]
fn an_async_trait_method_is_supervised_inside_its_boxed_future() {
    insta::assert_snapshot!(expand(
        quote!(name = "drain", keep(rx)),
        quote! {
            fn drain<'life0, 'async_trait>(
                &'life0 self,
                rx: Receiver<Job>,
                cancel: CancellationToken,
            ) -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = Result<(), E>> + ::core::marker::Send + 'async_trait>>
            where
                'life0: 'async_trait,
                Self: 'async_trait,
            {
                Box::pin(async move {
                    if let ::core::option::Option::Some(__ret) = ::core::option::Option::None::<Result<(), E>> {
                        #[allow(unreachable_code)]
                        return __ret;
                    }
                    let __self = self;
                    let mut rx = rx;
                    let cancel = cancel;
                    let __ret: Result<(), E> = {
                        while let Some(job) = rx.recv().await {
                            __self.handle(job).await?;
                        }
                        Ok(())
                    };
                    #[allow(unreachable_code)]
                    __ret
                })
            }
        }
    ));
}

#[test]
fn methods_reborrow_and_clone_self() {
    insta::assert_snapshot!(expand(
        quote!(),
        quote! {
            async fn relay(self: Arc<Self>, rx: &mut Receiver<Msg>, (low, high): (u32, u32)) {
                while let Some(msg) = rx.recv().await {
                    if msg.id < low || msg.id > high {
                        continue;
                    }
                    self.publish(msg).await;
                }
            }
        }
    ));
}

#[test]
fn continue_in_select_and_labeled_loops() {
    insta::assert_snapshot!(expand(
        quote!(name = "pump"),
        quote! {
            async fn pump(mut rx: Receiver<u32>, cancel: CancellationToken) {
                'outer: loop {
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        Some(v) = rx.recv() => {
                            for i in 0..v {
                                if i == 3 { continue 'outer; }
                                if i == 1 { continue; }
                            }
                        }
                    }
                }
            }
        }
    ));
}

#[test]
fn for_and_loops_in_branches_and_in_sequence() {
    insta::assert_snapshot!(expand(
        quote!(name = "batches"),
        quote! {
            async fn batches(jobs: Vec<Job>, retry: bool) {
                for job in &jobs {
                    run(job).await;
                }
                if retry {
                    while let Some(job) = failed().pop() {
                        run(&job).await;
                    }
                }
            }
        }
    ));
}

#[test]
fn an_error_keeps_the_fn_and_adds_one_compile_error() {
    insta::assert_snapshot!(expand(
        quote!(tick = "60x"),
        quote! {
            fn scheduler() {
                loop {}
            }
        }
    ));
}
