use supervised::supervised;

/// Neither `Display` nor `Debug`: the supervisor has no text to log for it.
struct Opaque;

#[supervised(name = "opaque")]
async fn opaque() -> Result<(), Opaque> {
    loop {
        return Err(Opaque);
    }
}

fn main() {}
