//! Generics, where-clauses and lifetimes are kept.
use std::fmt::Debug;
use supervised::supervised;

#[supervised]
async fn drain<'a, T, I>(label: &'a str, items: I)
where
    T: Debug,
    I: IntoIterator<Item = T> + Clone,
{
    for item in items {
        let _ = format!("{label}: {item:?}");
    }
}

fn main() {
    let _ = drain("numbers", vec![1, 2, 3]);
}
