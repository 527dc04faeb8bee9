//! The plugins Junction ships, built from `plugins/` by the build script and
//! embedded in the binary so that `junction demo` needs nothing else.

/// The Jira Cloud connector (`plugins/jira`).
pub static JIRA_CONNECTOR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jira.wasm"));

/// The HubSpot deal -> canonical project transform (`plugins/hubspot-deal-to-project`).
pub static HUBSPOT_DEAL_TO_PROJECT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/hubspot_deal_to_project.wasm"));

/// Every shipped plugin component.
pub fn all() -> [&'static [u8]; 2] {
    [JIRA_CONNECTOR, HUBSPOT_DEAL_TO_PROJECT]
}
