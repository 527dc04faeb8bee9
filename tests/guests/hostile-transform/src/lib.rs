//! A transform that returns `count` outputs of `bytes` bytes each: a flood
//! of tiny strings makes the host lift a huge `list<string>` from a small
//! amount of guest memory; long ones test the byte cap.

use junction_sdk::{JsonSchema, Result, Transform};
use serde::Deserialize;

struct Flood;

#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "junction_sdk::schemars")]
struct Shape {
    /// How many outputs.
    count: usize,
    /// Bytes of each output string.
    bytes: usize,
}

impl Transform for Flood {
    type Input = Shape;
    type Output = String;

    fn apply(input: Shape) -> Result<Vec<String>> {
        Ok(vec!["x".repeat(input.bytes); input.count])
    }
}

junction_sdk::export_transform!(Flood);
