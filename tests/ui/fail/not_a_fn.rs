use supervised::supervised;

#[supervised]
struct Scheduler {
    tick: u64,
}

fn main() {}
