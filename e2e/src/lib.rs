pub mod fixtures;
pub mod lab;
pub mod probe;
pub mod vmlab;

/// Fails the calling test unless it runs as root. The lab and the fixtures
/// make network namespaces, bridges and nftables rules and run containerd,
/// which only root can: a test that needs them fails without them, with this
/// message, rather than passing having tested nothing.
#[track_caller]
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root (network namespaces, containerd): \
         run the suite as root, as CI does (./scripts/test)"
    );
}

/// A lab for a test: root required (see [`require_root`]), and an earlier
/// lab of the same name, left by a crashed run, replaced.
#[track_caller]
pub fn test_lab(config: lab::LabConfig) -> lab::Lab {
    require_root();
    lab::Lab::up(lab::LabConfig {
        replace: true,
        ..config
    })
    .unwrap_or_else(|e| panic!("lab up: {e}"))
}
