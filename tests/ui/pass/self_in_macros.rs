//! `self` in a by-value method: a `macro_rules!` written in the body reads
//! the run's own copy, and a macro call that defines a fn keeps that fn's
//! own `self` (renaming it would not compile).

use supervised::supervised;

macro_rules! define {
    ($($item:tt)*) => { $($item)* };
}

#[derive(Clone)]
struct Worker {
    name: String,
}

impl Worker {
    #[supervised(name = "self-in-macros")]
    async fn run(self, rounds: u32) {
        macro_rules! name {
            () => {
                self.name.clone()
            };
        }
        for _ in 0..rounds {
            define! {
                struct Local(u8);
                impl Local {
                    fn get(&self) -> u8 {
                        self.0
                    }
                }
            }
            assert_eq!(Local(1).get(), 1);
            assert_eq!(name!(), "worker");
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    Worker {
        name: "worker".to_string(),
    }
    .run(2)
    .await;
    assert_eq!(supervised::registry().subsystem("self-in-macros").beats(), 2);
}
