use std::collections::HashMap;

use shoal_proto::types::v1::{
    restart_policy, service_spec, update_config, ContainerSpec, PortConfig, PortProtocol,
    PublishMode, ResourceRequirements, ServiceSpec,
};

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load(text: &str) -> Stack {
    load_with(text, &[])
}

fn load_with(text: &str, vars: &[(&str, &str)]) -> Stack {
    match load_str(text, "stack.yml", &env(vars)) {
        Ok(s) => s,
        Err(e) => panic!("load failed: {e}"),
    }
}

fn load_err(text: &str) -> ComposeError {
    load_err_with(text, &[])
}

fn load_err_with(text: &str, vars: &[(&str, &str)]) -> ComposeError {
    match load_str(text, "stack.yml", &env(vars)) {
        Ok(s) => panic!("expected an error, got {s:?}"),
        Err(e) => e,
    }
}

fn only(stack: &Stack) -> &ServiceSpec {
    assert_eq!(stack.services.len(), 1, "{stack:?}");
    &stack.services[0].spec
}

fn container(spec: &ServiceSpec) -> &ContainerSpec {
    spec.task
        .as_ref()
        .and_then(|t| t.container.as_ref())
        .expect("container spec")
}

fn at(line: usize, column: usize) -> Option<Location> {
    Some(Location { line, column })
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn minimal_service_defaults_to_one_replica() {
    let stack = load("version: \"3.8\"\nservices:\n  web:\n    image: nginx:1.25\n");
    assert_eq!(stack.services[0].name, "web");
    let spec = only(&stack);
    assert_eq!(container(spec).image, "nginx:1.25");
    assert_eq!(
        spec.mode,
        Some(service_spec::Mode::Replicated(
            shoal_proto::types::v1::ReplicatedMode { replicas: 1 }
        ))
    );
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
}

#[test]
fn string_command_and_entrypoint_split_like_shlex() {
    let stack = load(
        "services:\n  web:\n    image: x\n    command: sh -c 'echo \"hi there\" && sleep 1'\n    entrypoint: /bin/tini --\n",
    );
    let c = container(only(&stack));
    assert_eq!(
        c.args,
        strings(&["sh", "-c", "echo \"hi there\" && sleep 1"])
    );
    assert_eq!(c.command, strings(&["/bin/tini", "--"]));
}

#[test]
fn list_command_and_entrypoint_are_taken_verbatim() {
    let stack = load(
        "services:\n  web:\n    image: x\n    command: [\"echo\", \"a b\"]\n    entrypoint:\n      - /bin/sh\n      - -c\n",
    );
    let c = container(only(&stack));
    assert_eq!(c.args, strings(&["echo", "a b"]));
    assert_eq!(c.command, strings(&["/bin/sh", "-c"]));
}

#[test]
fn unterminated_quote_in_command_is_an_error_at_the_value() {
    let e = load_err("services:\n  web:\n    image: x\n    command: echo 'oops\n");
    assert!(e.to_string().contains("services.web.command"), "{e}");
    assert!(e.to_string().contains("closing quote"), "{e}");
    assert_eq!(e.location(), at(4, 14));
}

#[test]
fn environment_list_form_takes_bare_names_from_env_and_drops_unset() {
    let stack = load_with(
        "services:\n  web:\n    image: x\n    environment:\n      - A=1\n      - FROM_ENV\n      - MISSING\n      - EMPTY=\n      - C=a=b\n",
        &[("FROM_ENV", "yes"), ("EMPTY", "filled")],
    );
    assert_eq!(
        container(only(&stack)).env,
        strings(&["A=1", "C=a=b", "EMPTY=filled", "FROM_ENV=yes"])
    );
}

#[test]
fn environment_map_form_converts_numbers_like_docker() {
    let stack = load_with(
        "services:\n  web:\n    image: x\n    environment:\n      N: 3\n      F: 1.5\n      BIG: 1000000.0\n      SMALL: 0.00001\n      S: text\n      NULL_FROM_ENV:\n      NULL_UNSET: null\n",
        &[("NULL_FROM_ENV", "v")],
    );
    assert_eq!(
        container(only(&stack)).env,
        strings(&[
            "BIG=1e+06",
            "F=1.5",
            "N=3",
            "NULL_FROM_ENV=v",
            "S=text",
            "SMALL=1e-05"
        ])
    );
}

#[test]
fn environment_booleans_are_rejected_like_docker() {
    let e = load_err("services:\n  web:\n    image: x\n    environment:\n      B: true\n");
    assert!(
        e.to_string()
            .contains("services.web.environment.B must be a string, number or null"),
        "{e}"
    );
    assert_eq!(e.location(), at(5, 10));
}

#[test]
fn ports_short_syntax() {
    let stack = load(
        "services:\n  web:\n    image: x\n    ports:\n      - \"8080:80\"\n      - \"53:53/udp\"\n      - \"90\"\n      - 91\n      - \"8000-8001:70-71\"\n",
    );
    let ports = &only(&stack).endpoint.as_ref().expect("endpoint").ports;
    let tcp = PortProtocol::Tcp as i32;
    let ingress = PublishMode::Ingress as i32;
    let p = |target, published, protocol| PortConfig {
        name: String::new(),
        protocol,
        target_port: target,
        published_port: published,
        publish_mode: ingress,
    };
    assert_eq!(
        ports,
        &vec![
            p(80, 8080, tcp),
            p(53, 53, PortProtocol::Udp as i32),
            p(90, 0, tcp),
            p(91, 0, tcp),
            p(70, 8000, tcp),
            p(71, 8001, tcp),
        ]
    );
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
}

#[test]
fn ports_host_ip_is_ignored_with_a_warning() {
    let stack =
        load("services:\n  web:\n    image: x\n    ports:\n      - \"127.0.0.1:8080:80\"\n");
    let ports = &only(&stack).endpoint.as_ref().expect("endpoint").ports;
    assert_eq!((ports[0].target_port, ports[0].published_port), (80, 8080));
    assert_eq!(stack.warnings.len(), 1, "{:?}", stack.warnings);
    assert!(
        stack.warnings[0].contains("127.0.0.1"),
        "{:?}",
        stack.warnings
    );
    assert!(
        stack.warnings[0].contains("\"web\""),
        "{:?}",
        stack.warnings
    );
}

#[test]
fn ports_long_syntax() {
    let stack = load(
        "services:\n  web:\n    image: x\n    ports:\n      - target: 80\n        published: 8080\n        protocol: udp\n        mode: host\n      - target: 81\n",
    );
    let ports = &only(&stack).endpoint.as_ref().expect("endpoint").ports;
    assert_eq!(ports[0].target_port, 80);
    assert_eq!(ports[0].published_port, 8080);
    assert_eq!(ports[0].protocol, PortProtocol::Udp as i32);
    assert_eq!(ports[0].publish_mode, PublishMode::Host as i32);
    assert_eq!(ports[1].target_port, 81);
    assert_eq!(ports[1].published_port, 0);
    assert_eq!(ports[1].publish_mode, PublishMode::Ingress as i32);
}

#[test]
fn invalid_port_spec_is_rejected_at_the_item() {
    let e = load_err("services:\n  web:\n    image: x\n    ports:\n      - \"99999:80\"\n");
    assert!(e.to_string().contains("services.web.ports.0"), "{e}");
    assert_eq!(e.location(), at(5, 9));
}

#[test]
fn sctp_ports_are_refused() {
    let e = load_err("services:\n  web:\n    image: x\n    ports: [\"5000:5000/sctp\"]\n");
    assert!(e.to_string().contains("sctp"), "{e}");
}

#[test]
fn deploy_replicas_mode_and_labels() {
    let stack = load(
        "services:\n  web:\n    image: x\n    labels:\n      c: container\n    deploy:\n      replicas: 3\n      labels: [\"s=service\", \"flag\"]\n  agent:\n    image: y\n    labels: [\"k=v\"]\n    deploy:\n      mode: global\n",
    );
    let web = &stack.services[0].spec;
    assert_eq!(
        web.mode,
        Some(service_spec::Mode::Replicated(
            shoal_proto::types::v1::ReplicatedMode { replicas: 3 }
        ))
    );
    assert_eq!(container(web).labels, env(&[("c", "container")]));
    assert_eq!(web.labels, env(&[("s", "service"), ("flag", "")]));
    let agent = &stack.services[1].spec;
    assert_eq!(
        agent.mode,
        Some(service_spec::Mode::Global(
            shoal_proto::types::v1::GlobalMode {}
        ))
    );
    assert_eq!(container(agent).labels, env(&[("k", "v")]));
    assert!(agent.labels.is_empty());
}

#[test]
fn replicas_with_global_mode_is_an_error() {
    let e = load_err(
        "services:\n  web:\n    image: x\n    deploy:\n      mode: global\n      replicas: 2\n",
    );
    assert!(e.to_string().contains("replicas"), "{e}");
    assert_eq!(e.location(), at(6, 17));
}

#[test]
fn unknown_deploy_mode_is_an_error() {
    let e = load_err("services:\n  web:\n    image: x\n    deploy:\n      mode: batch\n");
    assert!(e.to_string().contains("unknown mode"), "{e}");
    assert_eq!(e.location(), at(5, 13));
}

#[test]
fn job_modes_as_docker_reads_them() {
    use shoal_proto::types::v1::{service_spec::Mode, ReplicatedJob};
    let stack = load(
        "services:\n  web:\n    image: x\n    deploy:\n      mode: replicated-job\n      replicas: 3\n",
    );
    // `replicas` is both the completions and the concurrency.
    assert_eq!(
        only(&stack).mode,
        Some(Mode::ReplicatedJob(ReplicatedJob {
            max_concurrent: 3,
            total_completions: 3,
        }))
    );
    let stack = load("services:\n  web:\n    image: x\n    deploy:\n      mode: global-job\n");
    assert!(matches!(only(&stack).mode, Some(Mode::GlobalJob(_))));
    let e = load_err(
        "services:\n  web:\n    image: x\n    deploy:\n      mode: global-job\n      replicas: 2\n",
    );
    assert!(e.to_string().contains("replicated-job mode"), "{e}");
}

#[test]
fn container_settings() {
    let stack = load(
        "services:\n  web:\n    image: x\n    user: \"1000:1000\"\n    working_dir: /srv\n    hostname: web-1\n    stop_signal: SIGINT\n    stop_grace_period: 1m30s\n",
    );
    let c = container(only(&stack));
    assert_eq!(c.user, "1000:1000");
    assert_eq!(c.workdir, "/srv");
    assert_eq!(c.hostname, "web-1");
    assert_eq!(c.stop_signal, "SIGINT");
    assert_eq!(c.stop_grace_period_ms, 90_000);
}

#[test]
fn restart_policy_is_converted() {
    let stack = load(
        "services:\n  web:\n    image: x\n    deploy:\n      restart_policy:\n        condition: on-failure\n        delay: 5s\n        max_attempts: 3\n        window: 2m\n",
    );
    let task = only(&stack).task.as_ref().expect("task");
    let r = task.restart.as_ref().expect("restart policy");
    assert_eq!(r.condition, restart_policy::Condition::OnFailure as i32);
    assert_eq!(r.delay_ms, Some(5_000));
    assert_eq!(r.max_attempts, 3);
    assert_eq!(r.window_ms, 120_000);
}

#[test]
fn restart_policy_none_and_unknown_condition() {
    let stack = load("services:\n  web:\n    image: x\n    deploy:\n      restart_policy:\n        condition: none\n");
    let r = only(&stack)
        .task
        .as_ref()
        .and_then(|t| t.restart.as_ref())
        .expect("policy");
    assert_eq!(r.condition, restart_policy::Condition::None as i32);
    assert_eq!(r.delay_ms, None);
    let e = load_err("services:\n  web:\n    image: x\n    deploy:\n      restart_policy:\n        condition: sometimes\n");
    assert!(e.to_string().contains("sometimes"), "{e}");
    assert_eq!(e.location(), at(6, 20));
}

#[test]
fn update_config_is_converted() {
    let stack = load(
        "services:\n  web:\n    image: x\n    deploy:\n      update_config:\n        parallelism: 2\n        delay: 10s\n        order: start-first\n        failure_action: rollback\n        monitor: 1m\n        max_failure_ratio: 0.25\n",
    );
    let u = only(&stack).update.as_ref().expect("update config");
    assert_eq!(u.parallelism, 2);
    assert_eq!(u.delay_ms, 10_000);
    assert_eq!(u.order, update_config::Order::StartFirst as i32);
    assert_eq!(
        u.failure_action,
        update_config::FailureAction::Rollback as i32
    );
    assert_eq!(u.monitor_ms, 60_000);
    assert_eq!(u.max_failure_ratio, 0.25);
}

#[test]
fn update_config_defaults_parallelism_to_one() {
    let stack = load(
        "services:\n  web:\n    image: x\n    deploy:\n      update_config:\n        delay: 1s\n",
    );
    let u = only(&stack).update.as_ref().expect("update config");
    assert_eq!(u.parallelism, 1);
    assert_eq!(u.order, update_config::Order::StopFirst as i32);
    assert_eq!(u.failure_action, update_config::FailureAction::Pause as i32);
}

#[test]
fn interpolation_forms() {
    let stack = load_with(
        concat!(
            "services:\n  web:\n    image: \"${REPO}/app:${TAG:-latest}\"\n",
            "    hostname: $HOST\n",
            "    user: ${EMPTY-fallback}\n",
            "    working_dir: ${EMPTY:-/default}\n",
            "    stop_signal: ${UNSET-SIGTERM}\n",
            "    command: echo $$HOME ${REQ:?must be set} ${REQ2?also}\n",
        ),
        &[
            ("REPO", "registry:5000"),
            ("HOST", "h1"),
            ("EMPTY", ""),
            ("REQ", "r"),
            ("REQ2", ""),
        ],
    );
    let c = container(only(&stack));
    assert_eq!(c.image, "registry:5000/app:latest");
    assert_eq!(c.hostname, "h1");
    assert_eq!(c.user, "");
    assert_eq!(c.workdir, "/default");
    assert_eq!(c.stop_signal, "SIGTERM");
    assert_eq!(c.args, strings(&["echo", "$HOME", "r"]));
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
}

#[test]
fn interpolation_casts_numbers_like_docker() {
    let stack = load_with(
        "services:\n  web:\n    image: x\n    deploy:\n      replicas: ${N}\n    ports:\n      - target: \"${T}\"\n        published: ${P:-8080}\n",
        &[("N", "4"), ("T", "80")],
    );
    let spec = only(&stack);
    assert_eq!(
        spec.mode,
        Some(service_spec::Mode::Replicated(
            shoal_proto::types::v1::ReplicatedMode { replicas: 4 }
        ))
    );
    let port = &spec.endpoint.as_ref().expect("endpoint").ports[0];
    assert_eq!((port.target_port, port.published_port), (80, 8080));
}

#[test]
fn unset_variable_becomes_empty_with_a_warning() {
    let stack = load("services:\n  web:\n    image: \"app:${TAG}\"\n    hostname: $TAG\n");
    assert_eq!(container(only(&stack)).image, "app:");
    assert_eq!(
        stack.warnings,
        vec!["variable \"TAG\" is not set; substituting an empty string".to_string()]
    );
}

#[test]
fn required_variable_error_names_variable_and_message() {
    let e = load_err("services:\n  web:\n    image: \"app:${TAG:?set TAG to the release}\"\n");
    let text = e.to_string();
    assert!(matches!(e, ComposeError::Interpolation { .. }), "{e:?}");
    assert!(
        text.contains("required variable TAG is missing a value: set TAG to the release"),
        "{text}"
    );
    assert!(text.contains("services.web.image"), "{text}");
    assert_eq!(e.location(), at(3, 12));
    let e = load_err_with("services:\n  web:\n    image: ${TAG?no tag}\n", &[]);
    assert!(
        e.to_string()
            .contains("required variable TAG is missing a value: no tag"),
        "{e}"
    );
}

#[test]
fn malformed_interpolation_is_an_error() {
    let e = load_err("services:\n  web:\n    image: x\n    hostname: \"a $ b\"\n");
    assert!(matches!(e, ComposeError::Interpolation { .. }), "{e:?}");
    assert_eq!(e.location(), at(4, 15));
    assert!(load_str(
        "services:\n  web:\n    image: \"${A B}\"\n",
        "f",
        &HashMap::new()
    )
    .is_err());
}

#[test]
fn interpolation_does_not_touch_keys() {
    let stack = load_with(
        "services:\n  web:\n    image: x\n    labels:\n      $KEY: $VALUE\n",
        &[("KEY", "k"), ("VALUE", "v")],
    );
    assert_eq!(container(only(&stack)).labels, env(&[("$KEY", "v")]));
}

#[test]
fn cast_failure_after_interpolation_is_an_error() {
    let e = load_err_with(
        "services:\n  web:\n    image: x\n    deploy:\n      replicas: $N\n",
        &[("N", "lots")],
    );
    assert!(
        e.to_string().contains("services.web.deploy.replicas"),
        "{e}"
    );
    assert_eq!(e.location(), at(5, 17));
}

#[test]
fn unsupported_keys_warn_with_service_and_path() {
    let stack = load(concat!(
        "version: \"3.8\"\n",
        "services:\n  web:\n    image: x\n",
        "    networks: [front]\n",
        "    healthcheck:\n      test: [\"CMD\", \"true\"]\n",
        "    x-custom: ignored silently\n",
        "    container_name: web1\n",
        "    deploy:\n      placement:\n        constraints: [node.role==manager]\n",
        "        preferences:\n          - spread: node.labels.zone\n",
        "      resources:\n        limits:\n          memory: 50M\n",
        "networks:\n  front: {}\n",
        "x-defaults: &d\n  a: b\n",
    ));
    // docker's own deploy warning names container_name (deprecated);
    // shoal adds no note of its own for it.
    assert_eq!(
        stack.deprecated,
        [(
            "container_name".to_string(),
            "Setting the container name is not supported.".to_string()
        )]
    );
    // healthcheck, placement preferences and resources are read, not
    // warned about.
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
}

#[test]
fn keys_docker_ignores_are_named_in_dockers_words_and_shoals_own_apart() {
    let stack = load(concat!(
        "version: \"3.8\"\n",
        "services:\n  web:\n    image: x\n",
        "    build: .\n    restart: always\n    privileged: true\n",
        "    expose: [80]\n",
        "    isolation: default\n",
        "    environment: [\"A=${NOT_SET_ANYWHERE_12345}\"]\n",
    ));
    assert_eq!(stack.unsupported, ["build", "privileged", "restart"]);
    assert_eq!(stack.deprecated.len(), 1);
    assert_eq!(stack.deprecated[0].0, "expose");
    // shoal's own notes: a key docker honours and shoal does not yet, and
    // the unset variable; none under docker's heading.
    assert!(
        stack.warnings.iter().any(|w| w.contains("\"isolation\"")),
        "{:?}",
        stack.warnings
    );
    assert!(
        stack
            .warnings
            .iter()
            .any(|w| w.contains("NOT_SET_ANYWHERE_12345")),
        "{:?}",
        stack.warnings
    );
    assert!(
        !stack
            .warnings
            .iter()
            .any(|w| w.contains("build") || w.contains("restart")),
        "{:?}",
        stack.warnings
    );
}

fn log_driver(spec: &ServiceSpec) -> Option<&shoal_proto::types::v1::LogDriver> {
    spec.task.as_ref().and_then(|t| t.log_driver.as_ref())
}

#[test]
fn logging_is_the_services_log_driver_as_docker_converts_it() {
    let stack = load(concat!(
        "services:\n",
        "  web:\n    image: x\n",
        "    logging:\n      driver: json-file\n",
        "      options:\n        max-size: 10m\n        max-file: 3\n        compress: \"true\"\n",
        "  db:\n    image: x\n    logging:\n      options:\n        max-size: 1m\n",
        "  cache:\n    image: x\n    logging:\n      driver: none\n",
        "  plain:\n    image: x\n",
    ));
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    let service = |name: &str| {
        &stack
            .services
            .iter()
            .find(|s| s.name == name)
            .expect(name)
            .spec
    };
    let web = log_driver(service("web")).expect("web's driver");
    assert_eq!(web.name, "json-file");
    assert_eq!(
        web.options,
        env(&[("max-size", "10m"), ("max-file", "3"), ("compress", "true")]),
        "numbers are strings, as docker's schema makes them"
    );
    // docker's convertLogDriver: no `driver` keeps the default driver,
    // with the options.
    let db = log_driver(service("db")).expect("db's driver");
    assert_eq!(
        (db.name.as_str(), db.options["max-size"].as_str()),
        ("", "1m")
    );
    assert_eq!(log_driver(service("cache")).unwrap().name, "none");
    assert_eq!(log_driver(service("plain")), None);
}

#[test]
fn a_logging_driver_shoal_lacks_is_refused_at_the_driver() {
    let e = load_err("services:\n  web:\n    image: x\n    logging:\n      driver: gelf\n");
    assert!(
        e.to_string().contains(
            "logging driver \"gelf\" is not supported: shoal keeps logs with json-file, local or none"
        ),
        "{e}"
    );
    assert_eq!(e.location(), at(5, 15));
}

#[test]
fn unknown_service_key_is_an_error_at_the_key() {
    let e = load_err("version: \"3.8\"\nservices:\n  web:\n    image: x\n    foo: 1\n");
    assert_eq!(
        e.to_string(),
        "stack.yml (line 5, column 5): services.web Additional property foo is not allowed"
    );
}

#[test]
fn unknown_top_level_and_deploy_keys_are_errors() {
    let e = load_err("services:\n  web:\n    image: x\nfoo: 1\n");
    assert!(
        e.to_string()
            .contains("(root) Additional property foo is not allowed"),
        "{e}"
    );
    assert_eq!(e.location(), at(4, 1));
    let e = load_err("services:\n  web:\n    image: x\n    deploy:\n      replica: 2\n");
    assert!(
        e.to_string()
            .contains("services.web.deploy Additional property replica is not allowed"),
        "{e}"
    );
    assert_eq!(e.location(), at(5, 7));
}

#[test]
fn type_error_names_key_path_line_and_column() {
    let e = load_err("services:\n  web:\n    image: x\n    deploy:\n      replicas: many\n");
    assert_eq!(
        e.to_string(),
        "stack.yml (line 5, column 17): services.web.deploy.replicas must be an integer"
    );
    let e = load_err("services:\n  web:\n    image: x\n    deploy:\n      replicas: \"3\"\n");
    assert_eq!(e.location(), at(5, 17));
    let e = load_err("services:\n  web:\n    image: x\n    stop_grace_period: 1x\n");
    assert!(e.to_string().contains("format 'duration'"), "{e}");
    assert_eq!(e.location(), at(4, 24));
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let e = load_err("services:\n  web:\n    image: x\n  bad: [\n");
    assert!(matches!(e, ComposeError::Syntax { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("stack.yml (line 5, column 1): YAML syntax error"),
        "{e}"
    );
    assert_eq!(e.location(), at(5, 1));
    let e = load_err("services:\n  web:\n    image: x\n   user: me\n");
    assert!(matches!(e, ComposeError::Syntax { .. }), "{e:?}");
    assert!(e.location().is_some());
}

#[test]
fn unsupported_version_is_rejected() {
    let e = load_err("version: \"2\"\nservices:\n  web:\n    image: x\n");
    assert_eq!(
        e.to_string(),
        "stack.yml: unsupported Compose file version: 2"
    );
    // "3" and a missing version mean the newest 3.x, as in docker.
    load("version: \"3\"\nservices:\n  web:\n    image: x\n");
}

#[test]
fn older_versions_use_their_own_schema() {
    // `order` arrived in 3.4.
    let text = "version: \"VER\"\nservices:\n  web:\n    image: x\n    deploy:\n      update_config:\n        order: start-first\n";
    load(&text.replace("VER", "3.4"));
    let e = load_err(&text.replace("VER", "3.3"));
    assert!(
        e.to_string()
            .contains("Additional property order is not allowed"),
        "{e}"
    );
}

#[test]
fn forbidden_properties_are_rejected() {
    let e = load_err("services:\n  web:\n    image: x\n    extends: base\n");
    assert!(e.to_string().contains("extends"), "{e}");
    assert_eq!(e.location(), at(4, 5));
}

#[test]
fn service_without_image_is_rejected() {
    let e = load_err("services:\n  web:\n    user: me\n");
    assert!(e.to_string().contains("services.web has no image"), "{e}");
    assert_eq!(e.location(), at(3, 5));
}

#[test]
fn merge_keys_and_anchors_are_applied() {
    let stack = load(concat!(
        "x-base: &base\n  image: app:1\n  environment:\n    A: \"1\"\n",
        "services:\n  web:\n    <<: *base\n    user: me\n  worker:\n    <<: *base\n    image: app:2\n",
    ));
    assert_eq!(container(&stack.services[0].spec).image, "app:1");
    assert_eq!(container(&stack.services[0].spec).env, strings(&["A=1"]));
    assert_eq!(container(&stack.services[0].spec).user, "me");
    assert_eq!(container(&stack.services[1].spec).image, "app:2");
}

#[test]
fn odd_documents_do_not_panic() {
    for text in [
        "",
        "[]",
        "just a string",
        "services: 3",
        "services:\n  web: null\n",
        "services:\n  1: {image: x}\n",
        "services:\n  web: !custom {image: x}\n",
        "services:\n  web:\n    image: x\n    ports: [1.5]\n",
        "services:\n  web:\n    image: x\n    ports: [{target: 70000}]\n",
        "services:\n  web:\n    image: x\n    deploy:\n      replicas: -1\n",
        "services:\n  web:\n    image: x\n    stop_grace_period: -5s\n",
        "services:\n  web:\n    image: x\n    environment: [1]\n",
        "services:\n  web:\n    image: x\n    command: \"\\\\\"\n",
        "a: &a [*a]\n",
        "version: 3.10\nservices: {}\n",
        "version: null\n",
        "services:\n  web:\n    image: $\n",
        "services:\n  web:\n    image: x\n    <<: 5\n",
    ] {
        assert!(
            load_str(text, "odd.yml", &HashMap::new()).is_err(),
            "{text:?} was accepted"
        );
    }
}

#[test]
fn into_service_specs_scopes_names_and_labels() {
    let stack = load(
        "services:\n  web:\n    image: nginx:1\n    labels: [a=b]\n    deploy:\n      labels: [c=d]\n",
    );
    let specs = stack.into_service_specs("shop");
    assert_eq!(specs.len(), 1);
    let spec = &specs[0];
    assert_eq!(spec.name, "shop_web");
    assert_eq!(
        spec.labels,
        env(&[
            ("c", "d"),
            (LABEL_NAMESPACE, "shop"),
            (LABEL_IMAGE, "nginx:1")
        ])
    );
    assert_eq!(
        container(spec).labels,
        env(&[("a", "b"), (LABEL_NAMESPACE, "shop")])
    );
}

#[test]
fn load_file_reads_and_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stack.yml");
    std::fs::write(
        &path,
        "services:\n  web:\n    image: x\n    deploy: {replicas: x}\n",
    )
    .expect("write");
    let e = match load_file(&path, &HashMap::new()) {
        Ok(s) => panic!("accepted {s:?}"),
        Err(e) => e,
    };
    assert!(
        e.to_string().starts_with(&path.display().to_string()),
        "{e}"
    );
    let missing = load_file(&dir.path().join("nope.yml"), &HashMap::new());
    assert!(matches!(missing, Err(ComposeError::Read { .. })));
}

#[test]
fn plain_scalars_resolve_like_docker_yaml() {
    let stack = load(concat!(
        "services:\n  web:\n    image: x\n    environment:\n",
        "      OCTAL: 017\n      UNDERSCORE: 1_000\n      QUOTED: \"017\"\n      SINGLE: '1_000'\n",
        "    deploy:\n      replicas: 0x2\n",
    ));
    let spec = only(&stack);
    assert_eq!(
        container(spec).env,
        strings(&["OCTAL=15", "QUOTED=017", "SINGLE=1_000", "UNDERSCORE=1000"])
    );
    assert_eq!(
        spec.mode,
        Some(service_spec::Mode::Replicated(
            shoal_proto::types::v1::ReplicatedMode { replicas: 2 }
        ))
    );
}

#[test]
fn schemas_of_every_version_load() {
    for minor in 0..=13 {
        let text = format!("version: \"3.{minor}\"\nservices:\n  web:\n    image: x\n");
        load(&text);
    }
}

/// Every prefix of every fixture, and every fixture with one character replaced by a
/// character that matters to YAML or interpolation, loads or fails without panicking.
#[test]
fn mangled_fixtures_never_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/compose");
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures dir").flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|x| x == "yml") {
            texts.push(std::fs::read_to_string(&path).expect("fixture"));
        }
    }
    assert!(texts.len() > 40);
    let vars = env(&[("TAG", "1"), ("N", "2")]);
    let mut loads = 0usize;
    for text in &texts {
        let boundaries: Vec<usize> = text.char_indices().map(|(i, _)| i).collect();
        for &i in &boundaries {
            let _ = load_str(&text[..i], "m.yml", &vars);
            for replacement in ['$', '\n', '"', '-'] {
                let ch_len = text[i..].chars().next().map_or(0, char::len_utf8);
                let mangled = format!("{}{replacement}{}", &text[..i], &text[i + ch_len..]);
                let _ = load_str(&mangled, "m.yml", &vars);
            }
            loads += 5;
        }
    }
    assert!(loads > 10_000, "only {loads} loads");
}

#[test]
fn duplicate_environment_entries_are_rejected_like_docker() {
    let e =
        load_err("services:\n  web:\n    image: x\n    environment:\n      - A=1\n      - A=1\n");
    assert!(
        e.to_string()
            .contains("services.web.environment must not contain duplicate items"),
        "{e}"
    );
    assert_eq!(e.location(), at(5, 7));
}

#[test]
fn legacy_restart_applies_only_without_restart_policy() {
    let stack = load("services:\n  web:\n    image: x\n    restart: on-failure:3\n");
    let r = only(&stack)
        .task
        .as_ref()
        .and_then(|t| t.restart.as_ref())
        .expect("policy");
    assert_eq!(r.condition, restart_policy::Condition::OnFailure as i32);
    assert_eq!(r.max_attempts, 3);
    let stack = load("services:\n  web:\n    image: x\n    restart: always\n    deploy:\n      restart_policy:\n        condition: none\n");
    let r = only(&stack)
        .task
        .as_ref()
        .and_then(|t| t.restart.as_ref())
        .expect("policy");
    assert_eq!(r.condition, restart_policy::Condition::None as i32);
    let e = load_err("services:\n  web:\n    image: x\n    restart: always:2\n");
    assert_eq!(e.location(), at(4, 14));
}

#[test]
fn secrets_map_to_stack_scoped_or_external_names() {
    let stack = load(
        "version: \"3.8\"\n\
         services:\n  web:\n    image: web:v1\n    secrets:\n      - db_pass\n      - source: api_key\n        target: key\n        uid: \"1000\"\n        gid: \"1000\"\n        mode: 0400\n\
         secrets:\n  db_pass:\n    file: ./db_pass.txt\n  api_key:\n    external: true\n",
    );
    assert!(
        stack.warnings.iter().all(|w| !w.contains("secrets")),
        "{:?}",
        stack.warnings
    );
    let made: Vec<_> = stack.secrets.iter().filter(|s| !s.external).collect();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].cluster_name("app"), "app_db_pass");
    assert_eq!(
        made[0].file.as_deref(),
        Some(std::path::Path::new("./db_pass.txt"))
    );
    let spec = stack.into_service_specs("app").remove(0);
    let refs = &spec.task.unwrap().secrets;
    assert_eq!(refs[0].secret_name, "app_db_pass");
    assert_eq!(refs[0].target, "db_pass");
    assert_eq!(refs[1].secret_name, "api_key");
    assert_eq!(
        (refs[1].target.as_str(), refs[1].uid.as_str(), refs[1].mode),
        ("key", "1000", Some(0o400))
    );
}

#[test]
fn a_service_using_an_undefined_secret_is_an_error() {
    let err = load_err(
        "version: \"3.8\"\nservices:\n  web:\n    image: web:v1\n    secrets:\n      - nope\n",
    );
    assert!(err.to_string().contains("undefined secret nope"), "{err}");
}

const NETWORKS: &str = concat!(
    "version: \"3.8\"\n",
    "services:\n",
    "  web:\n    image: nginx\n    networks: [front, legacy, shared]\n",
    "  db:\n    image: postgres\n    networks:\n",
    "      back:\n        aliases: [database]\n        ipv4_address: 10.30.0.9\n",
    "      front:\n",
    "networks:\n",
    "  front:\n    driver_opts:\n      encrypted: \"\"\n    attachable: true\n    labels: [tier=web]\n",
    "  back:\n    name: custom_back\n    internal: true\n",
    "    ipam:\n      config:\n        - subnet: 10.30.0.0/24\n",
    "  legacy:\n    external:\n      name: old_net\n",
    "  shared:\n    external: true\n",
    "  unused: {}\n",
);

#[test]
fn service_networks_as_list_or_map_resolve_to_cluster_names() {
    let stack = load(NETWORKS);
    let web = &stack.services[0].spec;
    assert_eq!(web.networks, ["front", "legacy", "shared"]);
    let db = &stack.services[1].spec;
    assert_eq!(db.networks, ["back", "front"]);

    let (own, external) = stack.used_networks("shop");
    let names: Vec<&str> = own.iter().map(|n| n.name.as_str()).collect();
    // `unused` is named by no service: as docker, it is not made.
    assert_eq!(names, ["shop_front", "custom_back"]);
    assert_eq!(external, ["old_net", "shared"]);

    let specs = stack.into_service_specs("shop");
    assert_eq!(specs[0].networks, ["shop_front", "old_net", "shared"]);
    assert_eq!(specs[1].networks, ["custom_back", "shop_front"]);
}

#[test]
fn network_aliases_go_with_the_networks_deployed_name() {
    let stack = load(concat!(
        "services:\n",
        "  db:\n    image: postgres\n    networks:\n",
        "      back:\n        aliases: [database, primary]\n",
        "      front:\n        aliases: []\n",
        "      legacy:\n        aliases: [pg]\n",
        "      default:\n        aliases: [db-default]\n",
        "      named:\n",
        "networks:\n",
        "  back: {}\n  front: {}\n",
        "  legacy:\n    external:\n      name: old_net\n",
        "  named:\n    name: custom\n",
    ));
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    let db = &stack.services[0].spec;
    assert_eq!(db.networks, ["back", "front", "legacy", "default", "named"]);
    let keyed: Vec<(&str, &[String])> = db
        .network_aliases
        .iter()
        .map(|a| (a.network.as_str(), a.aliases.as_slice()))
        .collect();
    assert_eq!(
        keyed,
        [
            ("back", &strings(&["database", "primary"])[..]),
            ("legacy", &strings(&["pg"])[..]),
            ("default", &strings(&["db-default"])[..]),
        ],
        "an empty aliases list gives no entry"
    );
    let spec = &stack.into_service_specs("shop")[0];
    assert_eq!(
        spec.networks,
        [
            "shop_back",
            "shop_front",
            "old_net",
            "shop_default",
            "custom"
        ]
    );
    let deployed: Vec<&str> = spec
        .network_aliases
        .iter()
        .map(|a| a.network.as_str())
        .collect();
    assert_eq!(deployed, ["shop_back", "old_net", "shop_default"]);
    for entry in &spec.network_aliases {
        assert!(spec.networks.contains(&entry.network), "{entry:?}");
    }
}

#[test]
fn network_aliases_must_be_a_list_of_distinct_strings() {
    let e = load_err(
        "services:\n  web:\n    image: x\n    networks:\n      n:\n        aliases: www\n\
         networks:\n  n:\n",
    );
    assert!(e.to_string().contains("aliases"), "{e}");
    let e = load_err(
        "services:\n  web:\n    image: x\n    networks:\n      n:\n        aliases: [a, a]\n\
         networks:\n  n:\n",
    );
    assert!(e.to_string().contains("duplicate"), "{e}");
}

#[test]
fn dns_and_dns_search_take_a_string_or_a_list() {
    let stack = load(concat!(
        "services:\n",
        "  one:\n    image: x\n    hostname: one-host\n    dns: 10.0.0.2\n    dns_search: example.com\n",
        "  many:\n    image: x\n    dns: [1.1.1.1, \"2001:db8:0:0:0:0:0:53\"]\n",
        "    dns_search: [a.example, b.example]\n",
        "  none:\n    image: x\n",
    ));
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    let dns = |i: usize| container(&stack.services[i].spec).dns_config.clone();
    assert_eq!(container(&stack.services[0].spec).hostname, "one-host");
    assert_eq!(
        dns(0),
        Some(shoal_proto::types::v1::DnsConfig {
            nameservers: strings(&["10.0.0.2"]),
            search: strings(&["example.com"]),
            options: vec![],
        })
    );
    assert_eq!(
        dns(1),
        Some(shoal_proto::types::v1::DnsConfig {
            nameservers: strings(&["1.1.1.1", "2001:db8::53"]),
            search: strings(&["a.example", "b.example"]),
            options: vec![],
        }),
        "addresses written back as docker writes them"
    );
    assert_eq!(
        dns(2),
        None,
        "docker's convertDNSConfig: none without either key"
    );
    // Only one of them: settings with that one.
    let stack = load("services:\n  web:\n    image: x\n    dns_search: [svc.example]\n");
    let c = container(only(&stack));
    assert_eq!(
        c.dns_config
            .as_ref()
            .map(|d| (d.nameservers.len(), d.search.clone())),
        Some((0, strings(&["svc.example"])))
    );
}

#[test]
fn empty_dns_entries_name_nothing() {
    let stack = load_with(
        "services:\n  web:\n    image: x\n    dns: ${DNS}\n    dns_search: [\"\"]\n",
        &[("DNS", "")],
    );
    assert_eq!(container(only(&stack)).dns_config, None);
}

#[test]
fn a_nameserver_that_is_no_ip_address_is_refused_at_its_line() {
    let e = load_err("services:\n  web:\n    image: x\n    dns: [1.1.1.1, not-an-ip]\n");
    assert_eq!(
        e.to_string(),
        "stack.yml (line 4, column 20): services.web.dns.1 must be an IP address, not \"not-an-ip\""
    );
    let e = load_err("services:\n  web:\n    image: x\n    dns: dns.example\n");
    assert!(
        e.to_string()
            .contains("services.web.dns must be an IP address"),
        "{e}"
    );
    assert_eq!(e.location(), at(4, 10));
}

#[test]
fn dns_opt_is_not_in_dockers_3_x_schema() {
    // docker stack config refuses it too ("Additional property dns_opt is not allowed").
    let e = load_err("version: \"3.8\"\nservices:\n  web:\n    image: x\n    dns_opt: [ndots:2]\n");
    assert!(e.to_string().contains("dns_opt"), "{e}");
}

#[test]
fn network_options_become_the_network_spec() {
    let stack = load(NETWORKS);
    let (own, _) = stack.used_networks("shop");
    let front = &own[0];
    assert_eq!(front.driver, "overlay");
    assert!(front.encrypted, "encrypted: \"\" turns encryption on");
    assert!(front.attachable);
    assert!(!front.internal);
    assert_eq!(front.labels["tier"], "web");
    assert_eq!(front.labels[LABEL_NAMESPACE], "shop");
    let back = &own[1];
    assert_eq!(back.subnet, "10.30.0.0/24");
    assert!(back.internal);
    assert!(!back.encrypted);
    assert_eq!(back.labels[LABEL_NAMESPACE], "shop");

    let legacy = &stack.networks[2];
    assert!(legacy.external);
    assert_eq!(legacy.cluster_name("shop"), "old_net");
    let shared = &stack.networks[3];
    assert!(shared.external);
    assert_eq!(shared.cluster_name("shop"), "shared");
}

#[test]
fn network_settings_shoal_cannot_honour_are_named() {
    let stack = load(NETWORKS);
    assert_eq!(
        stack.warnings,
        ["service \"db\": network \"back\": key \"ipv4_address\" is not supported yet and was ignored"]
    );
    let stack = load(concat!(
        "version: \"3.13\"\n",
        "services:\n  web:\n    image: x\n    networks:\n",
        "      net:\n        aliases: [www]\n        ipv6_address: \"fd00::9\"\n",
        "        driver_opts:\n          com.docker.network.endpoint.sysctls: x\n",
        "networks:\n  net:\n",
    ));
    assert_eq!(
        stack.warnings,
        [
            "service \"web\": network \"net\": key \"ipv6_address\" is not supported yet and was ignored",
            "service \"web\": network \"net\": key \"driver_opts\" is not supported yet and was ignored",
        ]
    );
    assert_eq!(stack.services[0].spec.network_aliases[0].aliases, ["www"]);
    let stack = load(concat!(
        "services:\n  web:\n    image: x\n    networks: [net, default]\n",
        "networks:\n  net:\n    driver: bridge\n    driver_opts:\n      com.docker.network.mtu: 1400\n",
        "    ipam:\n      driver: custom\n      config:\n        - subnet: 10.1.0.0/24\n        - subnet: 10.2.0.0/24\n",
    ));
    let (own, _) = stack.used_networks("s");
    // Another driver is passed on: the manager refuses it.
    assert_eq!(own[0].driver, "bridge");
    assert_eq!(own[0].subnet, "10.1.0.0/24");
    assert_eq!(stack.services[0].spec.networks, ["net", "default"]);
    for expected in [
        "network \"net\": driver option \"com.docker.network.mtu\" is not supported yet and was ignored",
        "network \"net\": ipam driver \"custom\" is not supported yet and was ignored",
        "network \"net\": an ipam config entry after the first is not supported yet and was ignored",
    ] {
        assert!(
            stack.warnings.iter().any(|w| w == expected),
            "missing {expected:?} in {:?}",
            stack.warnings
        );
    }
}

#[test]
fn services_naming_no_network_are_on_the_stacks_default_network() {
    // docker/cli's convert.Networks: a service without `networks:` is on
    // `default`, made as `<stack>_default` (overlay, the stack's label).
    let stack = load(concat!(
        "services:\n",
        "  web:\n    image: nginx\n",
        "  api:\n    image: api\n    networks: [default, back]\n",
        "  db:\n    image: postgres\n    networks: [back]\n",
        "networks:\n  back: {}\n",
    ));
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    // As `docker stack config` shows it: only what the file says.
    assert!(stack.services[0].spec.networks.is_empty());
    assert_eq!(stack.networks.len(), 1);
    let (own, external) = stack.used_networks("shop");
    let names: Vec<&str> = own.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["shop_back", "shop_default"]);
    assert!(external.is_empty());
    let default = &own[1];
    assert_eq!(default.driver, "overlay");
    assert_eq!(
        default.labels,
        [(LABEL_NAMESPACE.to_string(), "shop".to_string())].into()
    );
    assert!(!default.attachable && !default.internal && !default.encrypted);
    assert!(default.subnet.is_empty(), "left to the cluster's pool");
    let specs = stack.into_service_specs("shop");
    assert_eq!(specs[0].networks, ["shop_default"]);
    assert_eq!(specs[1].networks, ["shop_default", "shop_back"]);
    assert_eq!(specs[2].networks, ["shop_back"]);

    // Every service names its networks: no default network.
    let stack = load("services:\n  db:\n    image: x\n    networks: [back]\nnetworks:\n  back:\n");
    let (own, _) = stack.used_networks("shop");
    let names: Vec<&str> = own.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["shop_back"]);

    // The file's own `default`: as it says, external or not.
    let stack = load(concat!(
        "services:\n  web:\n    image: x\n",
        "networks:\n  default:\n    external:\n      name: shared\n",
    ));
    let (own, external) = stack.used_networks("shop");
    assert!(own.is_empty(), "{own:?}");
    assert_eq!(external, ["shared"]);
    assert_eq!(stack.into_service_specs("shop")[0].networks, ["shared"]);
    let stack = load(concat!(
        "services:\n  web:\n    image: x\n",
        "networks:\n  default:\n    driver_opts:\n      encrypted: \"\"\n",
    ));
    let (own, _) = stack.used_networks("shop");
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].name, "shop_default");
    assert!(own[0].encrypted);
}

#[test]
fn a_service_on_an_undefined_network_is_refused() {
    let e = load_err("services:\n  web:\n    image: x\n    networks: [nowhere]\n");
    assert!(
        e.to_string().contains("undefined network \"nowhere\""),
        "{e}"
    );
    assert!(e.to_string().contains("services.web.networks"), "{e}");
}

#[test]
fn placement_constraints_and_max_replicas_per_node_are_honoured() {
    let stack = load_with(
        concat!(
            "version: \"3.8\"\n",
            "services:\n  web:\n    image: x\n",
            "    deploy:\n      placement:\n",
            "        constraints: [node.labels.zone == b, \"node.role!=manager\"]\n",
            "        max_replicas_per_node: ${MAX}\n",
        ),
        &[("MAX", "2")],
    );
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    let task = stack.services[0].spec.task.clone().unwrap();
    assert_eq!(
        task.constraints,
        ["node.labels.zone == b", "node.role!=manager"]
    );
    assert_eq!(task.max_replicas_per_node, 2);
}

#[test]
fn deploy_resources_read_as_docker_reads_them() {
    // The values `docker stack config` prints for the same file.
    let stack = load(concat!(
        "version: \"3.9\"\n",
        "services:\n  web:\n    image: x\n",
        "    deploy:\n      resources:\n",
        "        limits:\n          cpus: '0.50'\n          memory: 64M\n          pids: 100\n",
        "        reservations:\n          cpus: '0.25'\n          memory: 1g\n",
        "          generic_resources:\n            - discrete_resource_spec: {kind: gpu, value: 1}\n",
    ));
    let resources = only(&stack).task.as_ref().unwrap().resources;
    assert_eq!(
        resources,
        Some(ResourceRequirements {
            limit_nano_cpus: 500_000_000,
            limit_memory_bytes: 67_108_864,
            limit_pids: 100,
            reserve_nano_cpus: 250_000_000,
            reserve_memory_bytes: 1_073_741_824,
        })
    );
    assert_eq!(
        stack.warnings,
        ["service \"web\": key \"deploy.resources.reservations.generic_resources\" is not supported yet and was ignored"]
    );
    let none = load("version: \"3.9\"\nservices:\n  web:\n    image: x\n");
    assert_eq!(only(&none).task.as_ref().unwrap().resources, None);
}

#[test]
fn deploy_resources_errors_name_the_value() {
    let e = load_err(concat!(
        "version: \"3.9\"\nservices:\n  web:\n    image: x\n",
        "    deploy:\n      resources:\n        limits:\n          memory: 64x\n",
    ));
    assert!(
        e.to_string()
            .contains("services.web.deploy.resources.limits.memory"),
        "{e}"
    );
    assert!(e.to_string().contains("invalid suffix: 'x'"), "{e}");
    let e = load_err(concat!(
        "version: \"3.9\"\nservices:\n  web:\n    image: x\n",
        "    deploy:\n      resources:\n        reservations:\n          cpus: 'half'\n",
    ));
    assert!(
        e.to_string()
            .contains("failed to parse half as a rational number"),
        "{e}"
    );
    // docker's schema: cpus and memory are strings.
    let e = load_err(concat!(
        "version: \"3.9\"\nservices:\n  web:\n    image: x\n",
        "    deploy:\n      resources:\n        limits:\n          cpus: 0.5\n",
    ));
    assert!(e.to_string().contains("cpus"), "{e}");
}

#[test]
fn placement_preferences_keep_their_order() {
    let stack = load(concat!(
        "version: \"3.9\"\nservices:\n  web:\n    image: x\n",
        "    deploy:\n      placement:\n        preferences:\n",
        "          - spread: node.labels.zone\n          - spread: node.labels.rack\n",
    ));
    let task = only(&stack).task.clone().unwrap();
    let descriptors: Vec<String> = task
        .preferences
        .into_iter()
        .map(|p| p.spread_descriptor)
        .collect();
    assert_eq!(descriptors, ["node.labels.zone", "node.labels.rack"]);
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
}

#[test]
fn rollback_config_is_read_like_update_config() {
    // Compared with `docker stack config`: the same keys and values.
    let stack = load(
        "services:\n  web:\n    image: x\n    deploy:\n      rollback_config:\n        parallelism: 0\n        delay: 2s\n        order: start-first\n        failure_action: continue\n        monitor: 30s\n        max_failure_ratio: 0.5\n  db:\n    image: y\n    deploy:\n      rollback_config:\n        delay: 1s\n",
    );
    assert!(stack.warnings.is_empty(), "{:?}", stack.warnings);
    let spec_of = |name: &str| {
        &stack
            .services
            .iter()
            .find(|s| s.name == name)
            .expect("the service")
            .spec
    };
    let web = spec_of("web");
    let r = web.rollback.as_ref().expect("rollback config");
    assert_eq!(r.parallelism, 0);
    assert_eq!(r.delay_ms, 2_000);
    assert_eq!(r.order, update_config::Order::StartFirst as i32);
    assert_eq!(
        r.failure_action,
        update_config::FailureAction::Continue as i32
    );
    assert_eq!(r.monitor_ms, 30_000);
    assert_eq!(r.max_failure_ratio, 0.5);
    assert!(web.update.is_none(), "no update_config given");
    let db = spec_of("db");
    let r = db.rollback.as_ref().expect("rollback config");
    assert_eq!(r.parallelism, 1, "docker's default once the key is there");
    assert_eq!(r.failure_action, update_config::FailureAction::Pause as i32);
}

#[test]
fn hardening_and_runtime_keys_reach_the_container_spec() {
    let stack = load(concat!(
        "version: \"3.8\"\n",
        "services:\n  web:\n    image: x\n",
        "    user: \"1000\"\n",
        "    read_only: true\n",
        "    init: true\n",
        "    tty: true\n",
        "    stdin_open: true\n",
        "    cap_drop: [ALL]\n",
        "    cap_add: [NET_BIND_SERVICE]\n",
        "    security_opt: [\"no-new-privileges:true\", \"seccomp=unconfined\"]\n",
        "    tmpfs: /tmp\n",
        "    sysctls:\n      net.core.somaxconn: 1024\n",
        "    ulimits:\n      nproc: 65535\n      nofile:\n        soft: 20000\n        hard: 40000\n",
        "    extra_hosts:\n      - \"db:10.0.0.9\"\n      - \"v6=::1\"\n",
    ));
    let c = container(only(&stack));
    assert!(c.read_only && c.init && c.tty && c.open_stdin && c.no_new_privileges);
    assert_eq!(c.capability_drop, strings(&["ALL"]));
    assert_eq!(c.capability_add, strings(&["NET_BIND_SERVICE"]));
    assert_eq!(c.mounts.len(), 1);
    assert_eq!(c.mounts[0].target, "/tmp");
    assert_eq!(c.sysctls["net.core.somaxconn"], "1024");
    let ulimits: Vec<(&str, i64, i64)> = c
        .ulimits
        .iter()
        .map(|u| (u.name.as_str(), u.soft, u.hard))
        .collect();
    assert_eq!(ulimits, [("nofile", 20000, 40000), ("nproc", 65535, 65535)]);
    assert_eq!(c.hosts, strings(&["10.0.0.9 db", "::1 v6"]));
    let w = &stack.warnings;
    assert_eq!(
        w,
        &strings(&[
            "service \"web\": key \"security_opt seccomp=unconfined\" is not supported yet and was ignored"
        ]),
    );
    let e = load_err(concat!(
        "version: \"3.8\"\n",
        "services:\n  web:\n    image: x\n",
        "    extra_hosts: [\"db:not-an-ip\"]\n",
    ));
    assert!(e.to_string().contains("invalid IP address"), "{e}");
}

#[test]
fn a_secret_takes_its_value_from_an_environment_variable_beyond_dockers_schema() {
    let text = concat!(
        "version: \"3.8\"\n",
        "services:\n  web:\n    image: x\n    secrets: [db_password]\n",
        "secrets:\n  db_password:\n    environment: DB_PASSWORD\n",
    );
    let stack = load_with(text, &[("DB_PASSWORD", "hunter2")]);
    assert_eq!(stack.secrets[0].environment.as_deref(), Some("DB_PASSWORD"));
    assert_eq!(stack.secrets[0].file, None);
    let e = load_err(text);
    assert_eq!(
        e.to_string(),
        "stack.yml (line 8, column 18): secrets.db_password.environment environment variable DB_PASSWORD is not set"
    );
}

#[test]
fn a_cluster_volume_spec_is_named_in_a_note() {
    let stack = load(concat!(
        "version: \"3.13\"\n",
        "services:\n  db:\n    image: x\n    volumes: [data:/data]\n",
        "volumes:\n  data:\n    x-cluster-spec:\n      group: g\n",
    ));
    assert!(
        stack.warnings.iter().any(|w| w.contains("x-cluster-spec")),
        "{:?}",
        stack.warnings
    );
}
