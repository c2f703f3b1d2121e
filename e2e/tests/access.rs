//! Remote access with client bundles on a one-manager lab: bundles are made
//! over the local socket, contexts point the CLI at the manager's mTLS port,
//! and every role may do what it is granted and is refused the rest with
//! the manager's own message; a revoked bundle is refused at once.
use shoal_e2e::lab::{Lab, LabConfig};
use shoal_e2e::test_lab;

fn lab(name: &str) -> Lab {
    test_lab(LabConfig::new(name))
}

#[test]
fn bundles_grant_their_role_through_contexts_and_revocation_is_immediate() {
    let lab = lab("t-acc");
    let work = tempfile::tempdir().expect("tempdir");
    let manager = format!("tcp://{}:4242", lab.host_addr("m1").expect("m1"));
    let image = format!("{}/web:v1", lab.registry());

    let deployer = lab.client_bundle(work.path(), "ci-deploy", "deployer");
    let viewer = lab.client_bundle(work.path(), "dash", "viewer");
    let admin = lab.client_bundle(work.path(), "ops", "admin");
    // An existing file is never overwritten.
    let out = lab
        .shoal([
            "swarm",
            "client-bundle",
            "create",
            "again",
            "--role",
            "viewer",
            "-o",
            &viewer.to_string_lossy(),
        ])
        .expect("run shoal");
    assert!(!out.status.success(), "overwrote {}", viewer.display());
    let listed = lab
        .shoal_ok(["swarm", "client-bundle", "ls", "--format", "json"])
        .expect("bundle ls");
    let listed = shoal_e2e::lab::json_lines(&listed).expect("json");
    let roles: Vec<(&str, &str)> = listed
        .iter()
        .filter_map(|b| Some((b["Name"].as_str()?, b["Role"].as_str()?)))
        .collect();
    assert_eq!(
        roles,
        [
            ("ci-deploy", "deployer"),
            ("dash", "viewer"),
            ("ops", "admin")
        ],
        "`again` was refused before the manager issued anything"
    );

    let remote = lab.remote(work.path().join("config"));
    for (name, bundle) in [("deploy", &deployer), ("view", &viewer), ("adm", &admin)] {
        remote.ok(&[
            "context",
            "create",
            name,
            "--host",
            &manager,
            "--bundle",
            &bundle.to_string_lossy(),
        ]);
    }
    remote.ok(&["context", "use", "deploy"]);
    let ls = remote.ok(&["context", "ls"]);
    assert!(ls.lines().any(|l| l.starts_with("deploy *")), "{ls}");

    // The deployer (current context) deploys ...
    remote.ok(&["service", "create", "--name", "acc-web", &image]);
    remote.ok(&["service", "update", "--env-add", "COLOR=blue", "acc-web"]);
    remote.ok(&["service", "scale", "acc-web=2"]);
    let services = remote.ok(&["service", "ls"]);
    assert!(services.contains("acc-web"), "{services}");
    remote.ok(&["service", "rm", "acc-web"]);
    let compose = work.path().join("stack.yml");
    std::fs::write(
        &compose,
        format!("services:\n  api:\n    image: {image}\n    deploy:\n      replicas: 1\n"),
    )
    .expect("write compose file");
    remote.ok(&[
        "stack",
        "deploy",
        "-c",
        &compose.to_string_lossy(),
        "accstack",
    ]);
    let stacks = remote.ok(&["stack", "ls"]);
    assert!(stacks.contains("accstack"), "{stacks}");
    // ... but does not administer.
    let err = remote.refused(&["node", "rm", "m1"]);
    assert!(
        err.contains("a deployer bundle may not manage nodes"),
        "{err}"
    );
    let err = remote.refused(&["swarm", "join-token", "worker"]);
    assert!(err.contains("a deployer bundle may not"), "{err}");
    let err = remote.refused(&["swarm", "client-bundle", "ls"]);
    assert!(err.contains("a deployer bundle may not"), "{err}");

    // The viewer reads, chosen by --context over the current context.
    let nodes = remote.ok(&["--context", "view", "node", "ls"]);
    assert!(nodes.contains("m1"), "{nodes}");
    let services = remote.ok(&["--context", "view", "service", "ls"]);
    assert!(services.contains("accstack_api"), "{services}");
    let err = remote.refused(&[
        "--context",
        "view",
        "service",
        "create",
        "--name",
        "nope",
        &image,
    ]);
    assert!(
        err.contains("a viewer bundle may not change services"),
        "{err}"
    );
    // The same bundle file works as --tls-dir.
    let out = remote.ok(&[
        "--host",
        &manager,
        "--tls-dir",
        &viewer.to_string_lossy(),
        "node",
        "ls",
    ]);
    assert!(out.contains("m1"), "{out}");
    // --context and --host together are a usage error.
    let out = remote.run(&["--context", "view", "--host", &manager, "node", "ls"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // The admin manages bundles remotely and revokes the deployer's.
    let listed = remote.ok(&["--context", "adm", "swarm", "client-bundle", "ls"]);
    assert!(listed.contains("ci-deploy"), "{listed}");
    remote.ok(&[
        "--context",
        "adm",
        "swarm",
        "client-bundle",
        "revoke",
        "ci-deploy",
    ]);
    let err = remote.refused(&["service", "ls"]);
    assert!(
        err.contains("client bundle ci-deploy has been revoked"),
        "{err}"
    );
    let listed = remote.ok(&[
        "--context",
        "adm",
        "swarm",
        "client-bundle",
        "ls",
        "--format",
        "json",
    ]);
    let listed = shoal_e2e::lab::json_lines(&listed).expect("json");
    assert!(
        listed
            .iter()
            .any(|b| b["Name"] == "ci-deploy" && b["Revoked"] == true),
        "{listed:?}"
    );
    // The others are unaffected.
    remote.ok(&["--context", "view", "service", "ls"]);

    lab.shoal_ok(["stack", "rm", "accstack"]).expect("stack rm");
    lab.down().unwrap_or_else(|e| panic!("teardown: {e}"));
}
