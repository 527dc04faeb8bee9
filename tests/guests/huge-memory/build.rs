//! Asks the linker for 512 MiB of initial linear memory.

fn main() {
    println!("cargo:rustc-link-arg=--initial-memory=536870912");
}
