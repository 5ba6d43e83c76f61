//! The attribute never panics: `supervised2` is fed many generated and
//! mutated inputs (arguments and items) and must return tokens for each,
//! either an expansion that parses as a file or output that carries a
//! `compile_error!`. Each call runs under `catch_unwind`; a panic (or an
//! expansion that neither parses nor reports an error) prints the random seed, the
//! inputs and a reduced reproduction, and fails the test.
//!
//! Seeded, so a failure is reproducible: set `NEVER_PANICS_SEED=<n>` to run
//! one more seed, `NEVER_PANICS_CASES=<n>` to change the cases per seed.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::Instant;

use proc_macro2::{Delimiter, Group, TokenStream, TokenTree};

const SEEDS: [u64; 8] = [0, 1, 2, 3, 0x5eed, 0xdead_beef, 42, 2024];
const CASES_PER_SEED: usize = 1000;

/// Every key the attribute accepts: the list its "unknown key" error uses.
const VALID_KEYS: &[&str] = crate::attr::KEYS;

/// Keys it does not accept, including paths, keywords and near-misses.
const INVALID_KEYS: &[&str] = &[
    "foo",
    "Name",
    "tick2",
    "on_stalls",
    "onstall",
    "self",
    "super",
    "Self",
    "fn",
    "async",
    "r#tick",
    "r#crate",
    "_",
    "a::b",
    "::name",
    "crate::tick",
    "tick::<u8>",
    "max_restarts_",
    "ñame",
    "T",
];

/// String contents: valid and invalid durations, names, paths, oddities.
const STRINGS: &[&str] = &[
    "60s",
    "1m30s",
    "250ms",
    "1h",
    "2s",
    "30s",
    "10s",
    "1m",
    "0s",
    "0",
    "0ns",
    "1ns",
    "",
    " ",
    "\\n",
    "\\t \\n",
    "60x",
    "-5s",
    "5 s",
    "5sec",
    "1e3s",
    "1.5s",
    "s",
    "99999999999999999999h",
    "18446744073709551615s",
    "18446744073709551615s 999999999ns",
    "18446744073709551615s 1s",
    "18446744073709551615h",
    "584942417355y",
    "1000000000000000y",
    "2562047788015215h",
    "9223372036854775807s",
    "4294967295ms",
    "3m 2s 1ms 4us 5ns",
    "1y 1month 1w 1d",
    "∞",
    "日本",
    "🦀",
    "\\u{0}",
    "\\u{202e}",
    "\\\"",
    "scheduler",
    "restart",
    "report",
    "Restart",
    "a b",
    "::supervised",
    "::platform::supervised",
    "crate::x",
    "my_crate::supervised",
    "::",
    "a::",
    "::a::",
    "self",
    "self::x",
    "super::x",
    "a::<T>",
    "<T as U>::x",
    "r#type",
    "fn",
    "1abc",
    "(",
    "}",
    "a\\nb",
    "x y z",
];

/// Values that are not plain string literals.
const OTHER_VALUES: &[&str] = &[
    "5",
    "0",
    "-1",
    "-0",
    "4294967295",
    "4294967296",
    "18446744073709551616",
    "99999999999999999999999999999999999999999",
    "5u8",
    "5u32",
    "5i64",
    "300u8",
    "5usize",
    "5_u32",
    "0x10",
    "0b1",
    "0o7",
    "1_000",
    "1.5",
    "1e9",
    "1f32",
    "true",
    "false",
    "r\"60s\"",
    "r#\"60s\"#",
    "b\"60s\"",
    "c\"60s\"",
    "'c'",
    "b'c'",
    "\"60s\"suffix",
    "some::path",
    "::supervised",
    "self",
    "crate",
    "(a, b)",
    "[1, 2]",
    "{}",
    "{ \"60s\" }",
    "(\"60s\")",
    "concat!(\"6\", \"0s\")",
    "\"a\" \"b\"",
    "if true { 1 } else { 2 }",
    "|| 1",
    "-\"60s\"",
    "&\"60s\"",
    "'a",
    "=",
    "",
];

/// Stray punctuation put between or inside arguments.
const STRAY: &[&str] = &[
    ",", ",,", ";", "=", "==", "=>", "#", "@", "!", "::", ":", ".", "..", "'", "?", "$", "~", "&&",
    "-", "->", "()", "[]", "{}", "<", ">",
];

/// Tokens inserted into items by the mutator.
const INSERTIONS: &[&str] = &[
    "continue",
    "continue 'outer",
    "continue 'x",
    "break",
    "break 'outer",
    "'outer",
    "'outer:",
    "'a",
    "self",
    "Self",
    "mut self",
    "&self",
    "&mut self",
    "self: Arc<Self>",
    "loop",
    "loop {}",
    "while",
    "while true {}",
    "for",
    "for x in y {}",
    "in",
    "{}",
    "()",
    "[]",
    "{ continue; }",
    "async",
    "async move {}",
    "await",
    ".await",
    "const",
    "unsafe",
    "extern \"C\"",
    "extern",
    "\"C\"",
    "...",
    "->",
    "-> Result<(), E>",
    "-> ()",
    "-> !",
    "-> impl Future",
    "Result<",
    "Result",
    "<",
    ">",
    "<T>",
    "where T: Clone",
    "fn",
    "fn f() {}",
    "pub",
    "pub(crate)",
    "#[attr]",
    "#![inner]",
    "#",
    "!",
    "?",
    ";",
    ",",
    ":",
    "::",
    "=",
    "|",
    "||",
    "|x|",
    "move",
    "match",
    "if",
    "else",
    "let",
    "let _ =",
    "return",
    "yield",
    "try",
    "static",
    "struct",
    "impl",
    "trait",
    "mod",
    "use",
    "macro_rules!",
    "select!",
    "tokio::select! { _ = a => continue, }",
    "dyn",
    "ref",
    "@",
    "_",
    "0",
    "1u32",
    "\"s\"",
    "'c'",
    "CancellationToken",
    "cancel: CancellationToken",
    "r#loop",
    "r#self",
    "__supervised_subsystem",
    "__supervised_self",
    "__supervised_arg0",
    "x",
    "$",
    "~",
];

/// `#[supervised]` targets: fns of every shape the attribute accepts or rejects.
const FN_CORPUS: &[&str] = &[
    // A plain free fn with a tick.
    r#"
    /// Fires due cron jobs.
    pub async fn scheduler(db: Db, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(Duration::from_secs(60));
        loop {
            ticker.tick().await;
            fire_due_jobs(&db).await;
        }
    }
    "#,
    // Result return, while with `?`.
    r#"
    async fn sweep(cancel: CancellationToken) -> Result<(), SweepError> {
        while !cancel.is_cancelled() {
            sweep_once().await?;
        }
        Ok(())
    }
    "#,
    // Every receiver form.
    r#"
    impl X {
        async fn a(&self) { loop { self.x().await; } }
    }
    "#,
    r#"async fn by_ref(&self, rx: &mut Receiver<Msg>) { while let Some(m) = rx.recv().await { self.send(m).await; } }"#,
    r#"async fn by_mut(&mut self) { for i in 0..self.n { self.step(i).await; } }"#,
    r#"async fn by_value(self) { loop { self.tick().await; println!("{}", self.name); let _ = self::helper(); } }"#,
    r#"async fn by_mut_value(mut self) { loop { self.count += 1; if self.count > 3 { continue; } } }"#,
    r#"async fn arc(self: Arc<Self>, (low, high): (u32, u32)) { loop { if low > high { continue; } self.publish().await; } }"#,
    r#"async fn typed_ref(self: &Self) -> Result<(), E> { loop { self.go()?; } }"#,
    r#"async fn boxed(self: Box<Self>, Point { x, y }: Point, [a, b]: [u8; 2], mut n: u32, ref r: u8, w @ _: u8) { loop { n += x + y; } }"#,
    // Generics and where clauses.
    r#"
    pub(crate) async fn generic<'a, T: Clone + Send + 'static, const N: usize>(items: &'a [T; N], cancel: supervised::CancellationToken) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        T: std::fmt::Debug,
    {
        'outer: for item in items.iter() {
            for _ in 0..N {
                if cancel.is_cancelled() { break 'outer; }
                continue 'outer;
            }
        }
        Ok(())
    }
    "#,
    // select!-like macro bodies with continue and labels.
    r#"
    async fn pump(mut rx: Receiver<u32>, cancel: CancellationToken) {
        'outer: loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(v) = rx.recv() => {
                    for i in 0..v {
                        if i == 3 { continue 'outer; }
                        if i == 1 { continue; }
                    }
                    while false { continue; }
                    loop { continue 'outer }
                    continue;
                }
                else => continue,
            }
            println!("{}", continue);
        }
    }
    "#,
    // Closures, async blocks and nested items with loops of their own.
    r#"
    async fn nested(cancel: CancellationToken) {
        let f = || loop { continue; };
        let g = async { while true { continue; } };
        let h = async move |x: u32| { for _ in 0..x { continue; } };
        fn inner() { loop { continue; } }
        struct S;
        impl S { fn m(self) { loop { self; continue; } } }
        loop {
            let _ = (f, g, h);
            let v = if cancel.is_cancelled() { break } else { 1 };
            let w = match v { 0 => continue, _ => 2 };
            let _ = [continue, continue];
            foo(continue);
            unsafe { continue };
            { continue }
        }
    }
    "#,
    // Loops in tail position, value-carrying breaks, labeled blocks.
    r#"
    async fn tails() -> Result<u32, E> {
        let n = 'b: { if x { break 'b 1; } 2 };
        let v = loop { break 5; };
        if v > 3 {
            for x in 0..v { x }
        } else {
            while let Some(_) = it.next() { continue }
        }
        match v { _ => loop { continue } }
    }
    "#,
    // Mistakes the attribute reports: not async, const, extern, unsafe, bad return, no loop.
    r#"fn not_async() { loop {} }"#,
    r#"const async fn konst() { loop {} }"#,
    r#"pub const unsafe extern "C" fn ffi(x: u32) -> u32 { loop {} }"#,
    r#"async unsafe fn unsafe_fn() -> impl Future<Output = ()> { loop {} }"#,
    r#"async fn returns_i32() -> i32 { loop {} }"#,
    r#"async fn no_loop(cancel: CancellationToken) { work().await; }"#,
    r#"async fn never() -> ! { loop {} }"#,
    r#"async fn unit_ret() -> () { loop { if x { continue } } }"#,
    r#"async fn qself() -> <T as Tr>::Result { loop {} }"#,
    r#"async fn attrs(#[cfg(x)] a: u8, _: u8) { #[allow(x)] loop { #[attr] continue; } }"#,
    r#"async fn stmts() { loop { m!{} } loop { m!() } loop { m![] } while x { mac!(continue) } for _ in y { 1 } }"#,
    r#"async fn empty_body() {}"#,
    // `#[async_trait]`'s output, and boxed futures that are not.
    r#"fn run<'life0, 'async_trait>(&'life0 self, cancel: CancellationToken, __arg2: (u8, u8)) -> Pin<Box<dyn Future<Output = Result<(), E>> + Send + 'async_trait>> where 'life0: 'async_trait, Self: 'async_trait {
        Box::pin(async move {
            if let Some(__ret) = None::<Result<(), E>> { return __ret; }
            let __self = self;
            let cancel = cancel;
            let (a, b) = { let __arg2 = __arg2; __arg2 };
            let __ret: Result<(), E> = { loop { __self.tick(a, b).await?; m!(__self); } };
            #[allow(unreachable_code)] __ret
        })
    }"#,
    r#"fn drain<'async_trait>(self, rx: Receiver) -> Pin<Box<dyn Future<Output = ()> + 'async_trait>> { Box::pin(async move { let mut __self = self; let mut rx = rx; let _: () = { while let Some(m) = rx.recv().await { __self.n += m; } }; }) }"#,
    r#"fn hand(&self) -> Pin<Box<dyn Future<Output = ()> + '_>> { Box::pin(async move { loop {} }) }"#,
    r#"fn not_moved(&self) -> Pin<Box<dyn Future<Output = ()> + '_>> { Box::pin(async { let _: () = { loop {} }; }) }"#,
    r#"fn two(&self) -> Pin<Box<dyn Future<Output = ()> + '_>> { Box::pin(async move { let _: () = { loop {} }; }, 1) }"#,
    r#"fn empty() -> Pin<Box<dyn Future<Output = ()>>> { Box::pin() }"#,
    r#"fn unit_no_loop() -> Pin<Box<dyn Future<Output = ()>>> { ::std::boxed::Box::pin(async move { let _: () = { work().await }; }) }"#,
];

/// Things that are not fns, or not items at all.
const OTHER_ITEMS: &[&str] = &[
    "struct S { a: u32 }",
    "pub struct T(u8);",
    "enum E { A, B }",
    "impl S { async fn f(&self) { loop {} } }",
    "impl<T> Tr for S<T> {}",
    "trait Tr { async fn f(&self); }",
    "mod m { async fn f() { loop {} } }",
    "mod m;",
    "use a::b;",
    "const C: u32 = 1;",
    "static S: u32 = 1;",
    "type T = u8;",
    "extern \"C\" { fn f(); }",
    "macro_rules! m { () => {} }",
    "m! { async fn f() { loop {} } }",
    "fn declared();",
    "async fn declared();",
    "unsafe extern \"C\" fn variadic(x: u32, ...) { loop {} }",
    "async fn a() { loop {} } async fn b() { loop {} }",
    "",
    ";",
    "garbage tokens here",
    "1 + 2",
    "{ loop {} }",
    "async { loop {} }",
    "#[attr]",
    "fn",
    "async fn",
    "async fn f",
    "async fn f()",
    "async fn f() ->",
    "::",
    "'a",
    "\"string\"",
];

/// Pieces of a generated fn: qualifiers, generics, receivers, arguments,
/// returns and loop bodies that put `continue` and `self` in every
/// expression position the rewrites have to get through.
const QUALIFIERS: &[&str] = &[
    "async",
    "async",
    "async",
    "pub async",
    "pub(crate) async",
    "async unsafe",
    "const async",
    "async extern \"C\"",
    "unsafe extern \"C\"",
    "unsafe",
    "",
    "const",
    "default async",
];

const GENERICS: &[&str] = &[
    "",
    "",
    "<T>",
    "<'a, T: Clone + 'a, const N: usize>",
    "<T: ?Sized>",
    "<F: Fn() -> u8>",
];

const WHERE_CLAUSES: &[&str] = &["", "", "where T: Send", "where for<'x> F: Fn(&'x u8)"];

const RECEIVERS: &[&str] = &[
    "",
    "",
    "self",
    "mut self",
    "&self",
    "&mut self",
    "&'a self",
    "&'a mut self",
    "self: Self",
    "mut self: Self",
    "self: Arc<Self>",
    "mut self: Box<Self>",
    "self: &Self",
    "self: &mut Self",
    "self: Pin<&mut Self>",
];

const ARGS: &[&str] = &[
    "db: Db",
    "cancel: CancellationToken",
    "c: supervised::CancellationToken",
    "c: ::tokio_util::sync::CancellationToken",
    "c: CancellationToken<T>",
    "c: &CancellationToken",
    "rx: &mut Receiver<u32>",
    "r: &Db",
    "r: &'a [T; N]",
    "mut n: u32",
    "ref r: u8",
    "ref mut r: u8",
    "w @ _: u8",
    "x @ Some(_): Option<u8>",
    "(a, b): (u8, u8)",
    "(mut a, _): (u8, u8)",
    "[a, b]: [u8; 2]",
    "[a, ..]: [u8; 3]",
    "Point { x, y }: Point",
    "Point { x, .. }: Point",
    "Tuple(a, b): Tuple",
    "_: u8",
    "0..=5: u8",
    "5..: u8",
    "..=5: u8",
    "-1: i32",
    "\"s\": &str",
    "&x: &u8",
    "&mut x: &mut u8",
    "m!(): T",
    "f: impl Fn()",
    "f: fn() -> u8",
    "f: &dyn Fn()",
    "t: T",
    "r#loop: u8",
    "__supervised_arg0: u8",
    "__supervised_subsystem: u8",
    "#[cfg(x)] a: u8",
    "...",
    "a: ...",
];

const RETURNS: &[&str] = &[
    "",
    "",
    "-> ()",
    "-> Result<(), E>",
    "-> std::result::Result<u32, String>",
    "-> Result",
    "-> Result<impl Trait, E>",
    "-> Result<Self, E>",
    "-> Result<_, E>",
    "-> Result<fn() -> u8, E>",
    "-> anyhow::Result<()>",
    "-> io::Result<()>",
    "-> i32",
    "-> !",
    "-> impl Future<Output = ()>",
    "-> <T as X>::Result",
    "-> (u8,)",
    "-> (())",
    "-> Option<()>",
    "-> Self",
    "-> &'a Result<(), E>",
];

const LOOP_HEADS: &[&str] = &[
    "loop",
    "'outer: loop",
    "while !cancel.is_cancelled()",
    "'outer: while let Some(v) = rx.recv().await",
    "for i in 0..n",
    "'outer: for (a, b) in pairs",
    "while x == y",
];

const STATEMENTS: &[&str] = &[
    "work().await;",
    "continue;",
    "continue 'outer;",
    "continue 'other;",
    "break;",
    "break 'outer;",
    "return;",
    "x?;",
    "if x { continue }",
    "if x { continue; } else { break }",
    "let v = if x { continue } else { 1 };",
    "let v = match x { 0 => continue, 1 => continue 'outer, _ => 2 };",
    "let _ = continue;",
    "let Some(_) = y else { continue };",
    "let Some(_) = continue else { return };",
    "continue.foo();",
    "continue as u8;",
    "continue + 1;",
    "continue?;",
    "continue[0];",
    "continue(1);",
    "continue.await;",
    "continue 'outer.foo();",
    "if x == continue {}",
    "if continue {}",
    "if let Some(_) = continue {}",
    "match continue { _ => {} }",
    "for _ in continue {}",
    "while continue {}",
    "-continue;",
    "!continue;",
    "&continue;",
    "*continue;",
    "x..continue;",
    "..continue;",
    "(continue, 1);",
    "[continue];",
    "S { a: continue };",
    "foo(continue);",
    "x = continue;",
    "x += continue;",
    "return continue;",
    "break continue;",
    "'b: { continue }",
    "unsafe { continue }",
    "async { continue };",
    "|| continue;",
    "move || loop { continue };",
    "{ continue }",
    "#[attr] continue;",
    "loop { continue }",
    "'inner: loop { continue 'outer; continue 'inner; }",
    "while c { continue } ",
    "for _ in it { continue; }",
    "tokio::select! { _ = a => continue, _ = b => { continue 'outer; } else => break, }",
    "tokio::select!(_ = a => continue);",
    "m![continue 'outer, loop { continue }, while x { continue } for x in y {} { continue }];",
    "m!(continue 'x);",
    "m!{ continue }",
    "fn inner() { loop { continue } }",
    "struct S;",
    "impl S { fn m(self) { self; } }",
    "self;",
    "self.0;",
    "self.go().await;",
    "let s = self;",
    "let s = &mut self;",
    "*self;",
    "self as X;",
    "S { s: self };",
    "match self { _ => {} }",
    "self::helper();",
    "Self::new();",
    "<Self as T>::f(self);",
    "m!(self, self::x, self: u8, self.0);",
    "let f = || self;",
    "async move { self };",
    "1",
    "x",
    "match x {}",
    "match x {}.foo()",
    "{ 1 } - 1",
    "loop {}.foo()",
    "if x {} else {}",
    "m!()",
    "m! {}",
    "m![]",
    "#![inner] x;",
    "",
];

/// A random fn assembled from the pieces above.
fn gen_fn_text(rng: &mut fastrand::Rng) -> String {
    let mut inputs: Vec<&str> = Vec::new();
    let receiver = pick(rng, RECEIVERS);
    if !receiver.is_empty() {
        inputs.push(receiver);
    }
    for _ in 0..rng.usize(0..=3) {
        inputs.push(pick(rng, ARGS));
    }
    let mut body = String::new();
    for _ in 0..rng.usize(0..=2) {
        body.push_str(pick(rng, STATEMENTS));
        body.push(' ');
    }
    for _ in 0..rng.usize(0..=2) {
        let mut inner = String::new();
        for _ in 0..rng.usize(0..=4) {
            inner.push_str(pick(rng, STATEMENTS));
            inner.push(' ');
        }
        body.push_str(&format!("{} {{ {inner} }} ", pick(rng, LOOP_HEADS)));
        if rng.bool() {
            body.push_str(pick(rng, STATEMENTS));
            body.push(' ');
        }
    }
    format!(
        "{} fn f{}({}) {} {} {{ {body} }}",
        pick(rng, QUALIFIERS),
        pick(rng, GENERICS),
        inputs.join(", "),
        pick(rng, RETURNS),
        pick(rng, WHERE_CLAUSES),
    )
}

/// One checked call's failure.
struct Failure {
    what: &'static str,
    args: TokenStream,
    item: TokenStream,
    detail: String,
}

/// What a call that did not fail produced.
#[derive(Clone, Copy)]
enum Outcome {
    /// An expansion without an error that parses as a file.
    Expanded,
    /// Output carrying a `compile_error!`.
    Error,
}

thread_local! {
    /// Set while this thread runs a checked call: its panics are recorded, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where the last quiet panic happened.
    static LAST_LOCATION: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs, once, a panic hook that keeps quiet on threads inside a checked
/// call (recording the location instead) and defers to the previous hook
/// everywhere else, so other tests' panics print as usual.
fn install_quiet_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let location = info
                    .location()
                    .map_or_else(String::new, |l| format!("{}:{}", l.file(), l.line()));
                LAST_LOCATION.with(|last| *last.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `supervised2` and classifies the result.
fn check(args: &TokenStream, item: &TokenStream) -> Result<Outcome, (&'static str, String)> {
    install_quiet_hook();
    let (a, i) = (args.clone(), item.clone());
    QUIET.with(|q| q.set(true));
    let result = catch_unwind(AssertUnwindSafe(move || crate::supervised2(a, i)));
    QUIET.with(|q| q.set(false));
    match result {
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(ToString::to_string)
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "<non-string panic payload>".to_string());
            let location = LAST_LOCATION.with(|last| last.borrow().clone());
            Err(("panic", format!("at {location}: {message}")))
        }
        Ok(out) => {
            if has_top_level_compile_error(&out) {
                return Ok(Outcome::Error);
            }
            match syn::parse2::<syn::File>(out.clone()) {
                Ok(_) => Ok(Outcome::Expanded),
                Err(e) => Err((
                    "expansion neither parses nor reports an error",
                    format!("{e}: {out}"),
                )),
            }
        }
    }
}

/// Whether `out` carries an error the way `syn::Error::to_compile_error`
/// emits one: a `compile_error!` invocation among the top-level tokens.
fn has_top_level_compile_error(out: &TokenStream) -> bool {
    let tokens: Vec<TokenTree> = out.clone().into_iter().collect();
    tokens.windows(2).any(|w| {
        matches!(&w[0], TokenTree::Ident(i) if i == "compile_error")
            && matches!(&w[1], TokenTree::Punct(p) if p.as_char() == '!')
    })
}

fn lex(s: &str) -> Option<TokenStream> {
    s.parse::<TokenStream>().ok()
}

fn pick<'a>(rng: &mut fastrand::Rng, list: &[&'a str]) -> &'a str {
    list[rng.usize(..list.len())]
}

/// A random `key = value, ...` argument list, as source text.
fn gen_args_text(rng: &mut fastrand::Rng) -> String {
    let mut out = String::new();
    let pairs = rng.usize(0..=6);
    for index in 0..pairs {
        if index > 0 {
            out.push_str(match rng.u8(0..20) {
                0 => "",
                1 => ";",
                2 => ",,",
                3 => pick(rng, STRAY),
                _ => ",",
            });
            out.push(' ');
        }
        if rng.u8(0..20) == 0 {
            out.push_str(pick(rng, STRAY));
            out.push(' ');
        }
        let key = if rng.u8(0..5) == 0 {
            pick(rng, INVALID_KEYS)
        } else {
            pick(rng, VALID_KEYS)
        };
        out.push_str(key);
        match rng.u8(0..16) {
            // Bare key (`jitter`) or key and value without `=`.
            0 => {}
            1 => {
                out.push_str(&format!(" \"{}\"", pick(rng, STRINGS)));
            }
            // Nested group: `key(...)`.
            2 => {
                let inner = gen_args_text(rng);
                let (open, close) = match rng.u8(0..3) {
                    0 => ('(', ')'),
                    1 => ('[', ']'),
                    _ => ('{', '}'),
                };
                out.push_str(&format!("{open}{inner}{close}"));
            }
            3..=5 => {
                out.push_str(&format!(" = {}", pick(rng, OTHER_VALUES)));
            }
            6 => {
                out.push_str(&format!(" = {}", pick(rng, STRAY)));
            }
            _ => {
                out.push_str(&format!(" = \"{}\"", pick(rng, STRINGS)));
            }
        }
    }
    if rng.u8(0..4) == 0 {
        out.push(',');
    }
    if rng.u8(0..15) == 0 {
        out.push_str(pick(rng, STRAY));
    }
    out
}

/// Argument lists that pass every check, grouped by the keys they set
/// (keys that only make sense together share a group). A test checks that
/// the groups cover `KEYS`, so a new key cannot be left out of the corpus.
const VALID_ARGS: &[(&[&str], &[&str])] = &[
    (
        &["name"],
        &[
            "name = \"scheduler\"",
            "name = \"日本 🦀\"",
            "name = \"a \\\" b\\n\"",
            "name = r#\"raw\"#",
        ],
    ),
    (
        &["tick", "stale_after", "on_stall"],
        &[
            "tick = \"60s\"",
            "tick = \"none\"",
            "tick = \"1ns\", stale_after = \"18446744073709551615s 999999999ns\"",
            "tick = \"30s\", stale_after = \"30s\"",
            "tick = \"584942417355y\"",
            "tick = \"1s\", on_stall = \"restart\"",
            "on_stall = \"report\", tick = \"2s\", stale_after = \"1m\"",
        ],
    ),
    (
        &["initial_backoff", "max_backoff"],
        &[
            "initial_backoff = \"250ms\"",
            "initial_backoff = \"1ns\", max_backoff = \"18446744073709551615s\"",
            "max_backoff = \"1ns\"",
        ],
    ),
    (&["jitter"], &["jitter", "jitter = true", "jitter = false"]),
    (
        &["stop_timeout"],
        &[
            "stop_timeout = \"0s\"",
            "stop_timeout = \"2s\"",
            "stop_timeout = \"0ns\"",
            "grace = \"2s\"",
        ],
    ),
    (
        &["max_restarts", "within"],
        &[
            "max_restarts = 5, within = \"1m\"",
            "max_restarts = 0, within = \"1ns\"",
            "max_restarts = 4294967295u32, within = \"1y\"",
        ],
    ),
    (
        &["lease", "lease_ttl"],
        &[
            "lease = \"scheduler\"",
            "lease = \"日本 🦀\", lease_ttl = \"50ms\"",
            "lease_ttl = \"584942417355y\", lease = \"a b\"",
        ],
    ),
    (
        &["keep"],
        &["keep(self)", "keep(rx)", "keep(self, n, x)", "keep(r#type)"],
    ),
    (
        &["crate"],
        &[
            "crate = \"::supervised\"",
            "crate = \"my_crate::supervised\"",
            "crate = \"crate\"",
            "crate = \"self::x\"",
            "crate = \"super::super::s\"",
            "crate = \"r#type\"",
            "crate = \"a::b<T>\"",
            "crate = \"a::<T>\"",
            "crate = \"a::b()\"",
            "crate = \"a::b() -> u8\"",
        ],
    ),
];

/// A random argument list that passes every check, so the case reaches the
/// full expansion.
fn gen_valid_args_text(rng: &mut fastrand::Rng) -> String {
    let mut pairs: Vec<String> = Vec::new();
    for (_, options) in VALID_ARGS {
        if rng.u8(0..3) == 0 {
            pairs.push(pick(rng, options).to_string());
        }
    }
    rng.shuffle(&mut pairs);
    let mut out = pairs.join(", ");
    if rng.u8(0..4) == 0 {
        out.push(',');
    }
    out
}

#[test]
fn the_corpus_covers_every_key() {
    let mut grouped: Vec<&str> = VALID_ARGS
        .iter()
        .flat_map(|(keys, _)| keys.iter().copied())
        .collect();
    grouped.sort_unstable();
    let mut keys = VALID_KEYS.to_vec();
    keys.sort_unstable();
    assert_eq!(grouped, keys, "VALID_ARGS must cover attr::KEYS exactly");
    for (group, options) in VALID_ARGS {
        for key in *group {
            assert!(
                options
                    .iter()
                    .any(|o| o.split([',', '=', '(']).any(|part| part.trim() == *key)),
                "no valid value for `{key}` in the corpus"
            );
        }
    }
    for key in INVALID_KEYS {
        assert!(!VALID_KEYS.contains(key), "`{key}` is valid");
    }
}

/// A random item: a corpus fn (sometimes with an attribute or doc comment
/// in front) or a non-fn item.
fn gen_item_text(rng: &mut fastrand::Rng) -> String {
    let choice = rng.u8(0..6);
    if choice == 0 {
        pick(rng, OTHER_ITEMS).to_string()
    } else if choice <= 2 {
        gen_fn_text(rng)
    } else {
        let f = pick(rng, FN_CORPUS);
        match rng.u8(0..10) {
            0 => format!("#[inline] {f}"),
            1 => format!("#[supervised] {f}"),
            _ => f.to_string(),
        }
    }
}

/// Random token-tree edits at one level and, recursively, inside groups:
/// deletions, duplications, swaps, insertions and delimiter changes.
fn mutate(rng: &mut fastrand::Rng, stream: TokenStream, depth: usize) -> TokenStream {
    let mut trees: Vec<TokenTree> = stream.into_iter().collect();
    let edits = rng.usize(0..=3);
    for _ in 0..edits {
        let len = trees.len();
        match rng.u8(0..8) {
            0 if len > 0 => {
                trees.remove(rng.usize(..len));
            }
            1 if len > 0 => {
                let i = rng.usize(..len);
                let copy = trees[i].clone();
                trees.insert(i, copy);
            }
            2 if len > 1 => {
                let (i, j) = (rng.usize(..len), rng.usize(..len));
                trees.swap(i, j);
            }
            3 if len > 0 => {
                // Delete a run.
                let i = rng.usize(..len);
                let n = rng.usize(1..=(len - i).min(4));
                trees.drain(i..i + n);
            }
            4 if len > 0 => {
                // Change a group's delimiter.
                let i = rng.usize(..len);
                if let TokenTree::Group(g) = &trees[i] {
                    let delimiter = match rng.u8(0..4) {
                        0 => Delimiter::Parenthesis,
                        1 => Delimiter::Bracket,
                        2 => Delimiter::Brace,
                        _ => Delimiter::None,
                    };
                    let mut rebuilt = Group::new(delimiter, g.stream());
                    rebuilt.set_span(g.span());
                    trees[i] = TokenTree::Group(rebuilt);
                }
            }
            _ => {
                let i = rng.usize(..=len);
                if let Some(snippet) = lex(pick(rng, INSERTIONS)) {
                    for (k, tt) in snippet.into_iter().enumerate() {
                        trees.insert(i + k, tt);
                    }
                }
            }
        }
    }
    // Recurse into some of the groups.
    if depth < 8 {
        for tt in &mut trees {
            if let TokenTree::Group(g) = tt {
                if rng.u8(0..3) == 0 {
                    let mut rebuilt = Group::new(g.delimiter(), mutate(rng, g.stream(), depth + 1));
                    rebuilt.set_span(g.span());
                    *tt = TokenTree::Group(rebuilt);
                }
            }
        }
    }
    trees.into_iter().collect()
}

/// One random case: generated or mutated arguments and item.
fn gen_case(rng: &mut fastrand::Rng) -> Option<(TokenStream, TokenStream)> {
    let args_text = if rng.bool() {
        gen_valid_args_text(rng)
    } else {
        gen_args_text(rng)
    };
    let mut args = lex(&args_text)?;
    let mut item = lex(&gen_item_text(rng))?;
    if rng.u8(0..4) == 0 {
        args = mutate(rng, args, 0);
    }
    // Half the cases mutate the item, some of them several times over.
    if rng.bool() {
        for _ in 0..rng.usize(1..=3) {
            item = mutate(rng, item, 0);
        }
    }
    Some((args, item))
}

/// Shrinks a failing case: drops token trees and flattens groups, one at a
/// time, as long as the same kind of failure remains.
fn reduce(
    what: &'static str,
    detail: &str,
    mut args: TokenStream,
    mut item: TokenStream,
) -> (TokenStream, TokenStream) {
    // Bounded, so a failing run still ends quickly.
    let budget = Cell::new(4000usize);
    let fails = |a: &TokenStream, i: &TokenStream| {
        if budget.get() == 0 {
            return false;
        }
        budget.set(budget.get() - 1);
        check(a, i).is_err_and(|(w, d)| w == what && (what != "panic" || d == detail))
    };
    loop {
        let mut progress = false;
        for candidate in shrinks(&args) {
            if fails(&candidate, &item) {
                args = candidate;
                progress = true;
                break;
            }
        }
        if progress {
            continue;
        }
        for candidate in shrinks(&item) {
            if fails(&args, &candidate) {
                item = candidate;
                progress = true;
                break;
            }
        }
        if !progress {
            return (args, item);
        }
    }
}

/// Every stream one step smaller than `stream`: one token tree removed, a
/// group replaced by its contents, or a group's contents shrunk.
fn shrinks(stream: &TokenStream) -> Vec<TokenStream> {
    let trees: Vec<TokenTree> = stream.clone().into_iter().collect();
    let mut out = Vec::new();
    // Whole comma-separated segments first (one `key = value` of the args).
    let commas: Vec<usize> = trees
        .iter()
        .enumerate()
        .filter(|(_, tt)| matches!(tt, TokenTree::Punct(p) if p.as_char() == ','))
        .map(|(i, _)| i)
        .collect();
    let mut start = 0;
    for &end in commas.iter().chain(std::iter::once(&trees.len())) {
        let mut without = trees[..start].to_vec();
        without.extend(trees[(end + 1).min(trees.len())..].iter().cloned());
        out.push(without.into_iter().collect());
        start = end + 1;
    }
    for run in [2, 1] {
        for i in 0..trees.len().saturating_sub(run - 1) {
            let mut without = trees.clone();
            without.drain(i..i + run);
            out.push(without.into_iter().collect());
        }
    }
    for i in 0..trees.len() {
        if let TokenTree::Group(g) = &trees[i] {
            let mut flattened = trees[..i].to_vec();
            flattened.extend(g.stream());
            flattened.extend(trees[i + 1..].iter().cloned());
            out.push(flattened.into_iter().collect());
            for inner in shrinks(&g.stream()) {
                let mut rebuilt = Group::new(g.delimiter(), inner);
                rebuilt.set_span(g.span());
                let mut copy = trees.clone();
                copy[i] = TokenTree::Group(rebuilt);
                out.push(copy.into_iter().collect());
            }
        }
    }
    out
}

/// Cases found by this test, kept so they keep being checked.
fn regressions() -> Vec<(&'static str, &'static str)> {
    vec![
        // Every key at once, valid.
        (
            r#"name = "x", tick = "30s", stale_after = "90s", initial_backoff = "250ms", max_backoff = "10s", jitter, stop_timeout = "2s", max_restarts = 5, within = "1m", crate = "::platform::supervised""#,
            "async fn f(cancel: CancellationToken) -> Result<(), E> { loop {} }",
        ),
        // Found by this test: `crate` accepts a path with generic arguments
        // (`attr::parse_path`), and `expand` then builds
        // `a::b<T>::__private::Supervisor::new()`, which its `parse_quote!`
        // cannot parse ("comparison operators cannot be chained"): a panic
        // at expand.rs (the `new_body` `parse_quote!`).
        (r#"crate = "a::b<T>""#, "async fn f() { loop {} }"),
        (r#"crate = "a::b()""#, "async fn f() { loop {} }"),
        (r#"crate = "a::<T>""#, "async fn f() { loop {} }"),
        // Largest durations humantime accepts.
        (
            r#"tick = "18446744073709551615s 999999999ns", stale_after = "18446744073709551615s 999999999ns""#,
            "async fn f() { loop {} }",
        ),
    ]
}

#[test]
fn the_attribute_never_panics() {
    let started = Instant::now();
    let cases_per_seed = std::env::var("NEVER_PANICS_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES_PER_SEED);
    let mut seeds = SEEDS.to_vec();
    if let Some(extra) = std::env::var("NEVER_PANICS_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        seeds.push(extra);
    }

    let mut failures: Vec<(Option<u64>, Failure)> = Vec::new();
    let mut total = 0usize;
    let mut skipped = 0usize;
    let (mut expanded, mut errors) = (0usize, 0usize);

    for (args, item) in regressions() {
        let (args, item) = (lex(args).expect("lexes"), lex(item).expect("lexes"));
        total += 1;
        let result = check(&args, &item);
        println!(
            "never_panics: kept case #[supervised({args})] {item}: {}",
            match &result {
                Ok(Outcome::Expanded) => "expands".to_string(),
                Ok(Outcome::Error) => "compile error".to_string(),
                Err((what, detail)) => format!("{what} {detail}"),
            }
        );
        if let Err((what, detail)) = result {
            failures.push((
                None,
                Failure {
                    what,
                    args,
                    item,
                    detail,
                },
            ));
        }
    }

    for &seed in &seeds {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut ran = 0usize;
        for _ in 0..cases_per_seed {
            let Some((args, item)) = gen_case(&mut rng) else {
                skipped += 1;
                continue;
            };
            ran += 1;
            match check(&args, &item) {
                Ok(Outcome::Expanded) => expanded += 1,
                Ok(Outcome::Error) => errors += 1,
                Err((what, detail)) => failures.push((
                    Some(seed),
                    Failure {
                        what,
                        args,
                        item,
                        detail,
                    },
                )),
            }
        }
        println!("never_panics: seed {seed}: {ran} cases");
        total += ran;
    }

    println!(
        "never_panics: {total} cases over {} seeds ({skipped} generated inputs did not lex): \
         {expanded} expansions, {errors} compile errors, {} failures, {:.2?}",
        seeds.len(),
        failures.len(),
        started.elapsed()
    );

    if failures.is_empty() {
        return;
    }
    // One reduced reproduction per distinct failure (kind and panic site).
    let mut groups: BTreeMap<String, Vec<&(Option<u64>, Failure)>> = BTreeMap::new();
    for failure in &failures {
        let key = match failure.1.what {
            "panic" => failure.1.detail.clone(),
            other => other.to_string(),
        };
        groups.entry(key).or_default().push(failure);
    }
    for (key, group) in groups.iter().take(6) {
        let (seed, failure) = group[0];
        let (args, item) = reduce(
            failure.what,
            &failure.detail,
            failure.args.clone(),
            failure.item.clone(),
        );
        let origin = seed.map_or_else(|| "kept regression".to_string(), |s| format!("seed {s}"));
        println!(
            "\n{}: {key}\n  {} case(s), first from {origin}\n  args: {}\n  item: {}\n  reduced: #[supervised({args})] {item}\n  detail: {}",
            failure.what,
            group.len(),
            failure.args,
            failure.item,
            failure.detail,
        );
    }
    panic!(
        "{} of {total} inputs made `#[supervised]` panic or emit an unparsable expansion (first ones printed above)",
        failures.len()
    );
}
