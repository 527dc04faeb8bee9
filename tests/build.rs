//! Builds the test-only guests in `tests/guests/`.

use junction_build_support::{Guest, build};

fn main() {
    build(
        "guests",
        &[
            Guest {
                package: "echo",
                constant: "ECHO",
            },
            Guest {
                package: "echo-v2",
                constant: "ECHO_V2",
            },
            Guest {
                package: "hostile",
                constant: "HOSTILE",
            },
            Guest {
                package: "fs-reader",
                constant: "FS_READER",
            },
            Guest {
                package: "sockets",
                constant: "SOCKETS",
            },
            Guest {
                package: "other-world",
                constant: "OTHER_WORLD",
            },
            Guest {
                package: "huge-memory",
                constant: "HUGE_MEMORY",
            },
            Guest {
                package: "dumper",
                constant: "DUMPER",
            },
            Guest {
                package: "hostile-transform",
                constant: "HOSTILE_TRANSFORM",
            },
        ],
    );
}
