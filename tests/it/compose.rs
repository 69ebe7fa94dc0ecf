//! The deployment files, checked without a Docker engine (none runs in CI): `docker-compose.yml` against the
//! Compose Specification JSON schema vendored in `deploy/compose-spec.json` (see `deploy/README.md` for its
//! origin), the files it mounts, the Dockerfile's entry point and port, and the Grafana dashboard's queries
//! against the metric names `GET /metrics` really exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A YAML file as JSON (what the schema validates).
fn yaml(rel: &str) -> Value {
    serde_yaml::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not valid YAML: {e}"))
}

fn compose() -> Value {
    yaml("docker-compose.yml")
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&read("deploy/compose-spec.json"))
        .expect("deploy/compose-spec.json is JSON");
    assert_eq!(schema["title"], "Compose Specification");
    jsonschema::draft7::new(&schema).expect("the compose-spec schema compiles")
}

/// Every violation, as `instance path: message` (the document itself is `/`).
fn violations(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| {
            let path = e.instance_path().to_string();
            let path = if path.is_empty() { "/".into() } else { path };
            format!("{path}: {e}")
        })
        .collect()
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    let s = &compose["services"][name];
    assert!(s.is_object(), "docker-compose.yml has no service `{name}`");
    s
}

/// The port in `host:port` (or `ip:host:container`, the last part).
fn port_of(s: &str) -> u16 {
    s.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{s}`"))
}

/// The API port inside the container: from the `PAYOUTS_API__LISTEN` override compose sets.
fn compose_api_port(compose: &Value) -> u16 {
    let listen = service(compose, "payouts")["environment"]["PAYOUTS_API__LISTEN"]
        .as_str()
        .expect("payouts sets PAYOUTS_API__LISTEN (the API must listen on 0.0.0.0 in a container)");
    assert!(listen.starts_with("0.0.0.0:"), "{listen}");
    port_of(listen)
}

#[test]
fn compose_file_is_valid_against_the_compose_spec() {
    let validator = validator();
    let compose = compose();
    let errors = violations(&validator, &compose);
    assert!(
        errors.is_empty(),
        "docker-compose.yml violates the Compose Specification:\n{}",
        errors.join("\n")
    );
}

#[test]
fn compose_spec_rejects_broken_copies() {
    let validator = validator();
    let good = compose();
    assert!(
        validator.is_valid(&good),
        "docker-compose.yml itself is invalid"
    );

    type Breakage = (&'static str, fn(&mut Value), &'static str);
    let breakages: [Breakage; 5] = [
        (
            "ports given as a number",
            |c| c["services"]["payouts"]["ports"] = json!(8080),
            "/services/payouts/ports",
        ),
        (
            "an unknown top-level key",
            |c| c["servicez"] = c["services"].clone(),
            "/",
        ),
        (
            "an unknown service key",
            |c| c["services"]["payouts"]["depends"] = json!(["postgres"]),
            "/services/payouts",
        ),
        (
            "an unknown depends_on condition",
            |c| {
                c["services"]["payouts"]["depends_on"]["postgres"]["condition"] =
                    json!("service_ready")
            },
            "/services/payouts/depends_on",
        ),
        (
            "a healthcheck test given as a mapping",
            |c| c["services"]["postgres"]["healthcheck"]["test"] = json!({"cmd": "pg_isready"}),
            "/services/postgres/healthcheck/test",
        ),
    ];
    for (what, breakage, path) in breakages {
        let mut broken = good.clone();
        breakage(&mut broken);
        let errors = violations(&validator, &broken);
        assert!(
            !errors.is_empty(),
            "a copy of docker-compose.yml with {what} passed the schema"
        );
        assert!(
            errors.iter().any(|e| e.starts_with(&format!("{path}: "))),
            "{what}: no violation at `{path}`: {errors:?}"
        );
    }
}

#[test]
fn compose_file_wires_the_services() {
    let compose = compose();
    let postgres = service(&compose, "postgres");
    let payouts = service(&compose, "payouts");

    assert!(postgres["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("postgres:16")));
    assert!(postgres["healthcheck"]["test"]
        .to_string()
        .contains("pg_isready"));
    let postgres_data = postgres["volumes"][0].as_str().unwrap_or_default();
    let named = postgres_data.split(':').next().unwrap_or_default();
    assert!(
        compose["volumes"].get(named).is_some(),
        "postgres data volume `{named}` is not a named volume"
    );

    assert_eq!(payouts["build"]["context"], ".");
    assert_eq!(
        payouts["command"],
        json!(["run", "--config", "/etc/payouts/payouts.toml"])
    );
    assert_eq!(
        payouts["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    assert!(payouts["environment"]["DATABASE_URL"]
        .as_str()
        .is_some_and(|u| u.starts_with("postgres://") && u.contains("@postgres:5432/")));
    let mounts = payouts["volumes"].as_array().expect("payouts has volumes");
    for target in ["/etc/payouts/payouts.toml", "/etc/payouts/keys"] {
        let mount = mounts
            .iter()
            .find(|m| m["target"] == target)
            .unwrap_or_else(|| panic!("payouts does not mount {target}"));
        assert_eq!(mount["read_only"], true, "{target} is mounted writable");
    }
    let port = compose_api_port(&compose);
    let published = payouts["ports"][0]
        .as_str()
        .expect("payouts publishes the API");
    assert_eq!(port_of(published), port);

    for name in ["prometheus", "grafana"] {
        assert_eq!(
            service(&compose, name)["profiles"],
            json!(["monitoring"]),
            "{name} is not in the monitoring profile"
        );
    }
    // Only the two core services run without a profile.
    let default: Vec<&String> = compose["services"]
        .as_object()
        .expect("services")
        .iter()
        .filter(|(_, s)| s.get("profiles").is_none())
        .map(|(n, _)| n)
        .collect();
    assert_eq!(default, ["payouts", "postgres"]);

    // Secrets are never literal in the compose file: an interpolated variable, or a pass-through (null).
    for (name, s) in compose["services"].as_object().expect("services") {
        let Some(env) = s["environment"].as_object() else {
            continue;
        };
        for (key, value) in env {
            let upper = key.to_ascii_uppercase();
            if ["PASSWORD", "TOKEN", "SECRET", "KEY"]
                .iter()
                .any(|w| upper.contains(w))
            {
                assert!(
                    value.is_null() || value.as_str().is_some_and(|v| v.starts_with("${")),
                    "services.{name}.environment.{key} holds a literal secret"
                );
            }
        }
        if let Some(url) = env.get("DATABASE_URL").and_then(Value::as_str) {
            assert!(url.contains(":${POSTGRES_PASSWORD"), "{name}: DATABASE_URL");
        }
    }
}

#[test]
fn compose_file_references_files_that_exist() {
    let compose = compose();
    let root = root();
    // Operator-provided at deployment (never committed, never in the image): the config and the keys.
    let provided_by_operator = ["./payouts.toml", "./keys"];
    let dockerignore = read(".dockerignore");
    for p in provided_by_operator {
        let name = p.trim_start_matches("./");
        assert!(
            dockerignore
                .lines()
                .any(|l| l.trim_end_matches('/') == name),
            ".dockerignore must keep {name} out of the build context"
        );
    }

    let mut checked = 0;
    for (name, s) in compose["services"].as_object().expect("services") {
        if let Some(build) = s.get("build") {
            let context = root.join(build["context"].as_str().expect("build.context"));
            let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
            assert!(
                context.join(dockerfile).is_file(),
                "{name}: {dockerfile} missing"
            );
            checked += 1;
        }
        for volume in s["volumes"].as_array().into_iter().flatten() {
            let source = match volume {
                Value::String(short) => short.split(':').next().unwrap_or_default().to_string(),
                v if v["type"] == "bind" => v["source"].as_str().expect("bind source").to_string(),
                _ => continue,
            };
            if !source.starts_with('.') {
                continue; // a named volume
            }
            if provided_by_operator.contains(&source.as_str()) || source.starts_with("./keys/") {
                continue;
            }
            assert!(
                root.join(&source).exists(),
                "services.{name}.volumes: {source} does not exist"
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "only {checked} file references checked");

    for rel in [
        "deploy/prometheus/prometheus.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yml",
        "deploy/grafana/provisioning/dashboards/payouts.yml",
        "deploy/grafana/dashboards/payouts.json",
    ] {
        assert!(Path::new(&root.join(rel)).is_file(), "{rel} missing");
    }

    // Where Grafana is told to look is where compose mounts the dashboards.
    let provider = yaml("deploy/grafana/provisioning/dashboards/payouts.yml");
    let dashboards_path = provider["providers"][0]["options"]["path"]
        .as_str()
        .expect("dashboard provider path");
    let grafana_mounts = service(&compose, "grafana")["volumes"].to_string();
    assert!(
        grafana_mounts.contains(&format!("./deploy/grafana/dashboards:{dashboards_path}:ro")),
        "grafana does not mount the dashboards at {dashboards_path}: {grafana_mounts}"
    );
}

#[test]
fn dockerfile_runs_payouts_as_non_root_on_the_api_port() {
    let dockerfile = read("Dockerfile");
    let lines: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let from: Vec<&str> = lines
        .iter()
        .filter_map(|l| l.strip_prefix("FROM "))
        .collect();
    assert_eq!(from.len(), 2, "a builder and a runtime stage: {from:?}");
    assert!(from[0].starts_with("rust:") && from[0].contains("-bookworm"));
    assert!(from[1].starts_with("debian:bookworm-slim"));
    assert!(dockerfile.contains("cargo build --release --locked --bin payouts"));
    assert!(lines.contains(&r#"ENTRYPOINT ["payouts"]"#));
    assert!(lines.contains(&r#"CMD ["run", "--config", "/etc/payouts/payouts.toml"]"#));
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("USER");
    assert!(!user.starts_with("root") && !user.starts_with("0"));

    let expose: u16 = lines
        .iter()
        .find_map(|l| l.strip_prefix("EXPOSE "))
        .and_then(|p| p.trim().parse().ok())
        .expect("EXPOSE <port>");
    let default_listen = payouts_api::ApiConfig::default().listen;
    assert_eq!(
        expose,
        default_listen.port(),
        "EXPOSE vs api.listen default"
    );
    let compose = compose();
    assert_eq!(expose, compose_api_port(&compose));

    // Prometheus scrapes that port on the payouts service.
    let prometheus = yaml("deploy/prometheus/prometheus.yml");
    let job = prometheus["scrape_configs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["job_name"] == "payouts"))
        .expect("a `payouts` scrape job");
    assert_eq!(job["metrics_path"], "/metrics");
    assert_eq!(
        job["static_configs"][0]["targets"],
        json!([format!("payouts:{expose}")])
    );
}

/// Metric names `/metrics` exports: the string literals `"payouts_…"` in the collectors' code (the API's own,
/// and the workers' the binary registers).
fn exported_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for rel in [
        "api/src/metrics.rs",
        "api/src/routes/metrics.rs",
        "indexer/src/metrics.rs",
        "distributor/src/metrics.rs",
        "webhooks/src/worker.rs",
        "near/src/rpc/endpoint.rs",
    ] {
        let text = read(rel);
        for piece in text.split("\"payouts_").skip(1) {
            if let Some(end) = piece.find('"') {
                let name = &piece[..end];
                if name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    names.insert(format!("payouts_{name}"));
                }
            }
        }
    }
    names
}

/// The metric names a PromQL expression uses.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("payouts_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let exported = exported_metrics();
    assert!(
        exported.contains("payouts_http_requests_total") && exported.len() > 20,
        "{exported:?}"
    );
    let dashboard: Value = serde_json::from_str(&read("deploy/grafana/dashboards/payouts.json"))
        .expect("the dashboard is JSON");
    let datasource = yaml("deploy/grafana/provisioning/datasources/prometheus.yml");
    let uid = &datasource["datasources"][0]["uid"];

    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert!(
            ids.insert(panel["id"].as_u64().expect("panel id")),
            "duplicate panel id {}",
            panel["id"]
        );
        for target in panel["targets"].as_array().into_iter().flatten() {
            assert_eq!(&target["datasource"]["uid"], uid, "{}", panel["title"]);
            let expr = target["expr"].as_str().expect("expr");
            let names = metrics_in(expr);
            assert!(
                !names.is_empty(),
                "{}: `{expr}` uses no payouts metric",
                panel["title"]
            );
            for name in names {
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| exported.contains(*b)))
                    .unwrap_or(&name);
                assert!(
                    exported.contains(base),
                    "panel {}: `{name}` is not exported by GET /metrics",
                    panel["title"]
                );
                used.insert(base.to_string());
            }
        }
    }
    for wanted in [
        "payouts_indexer_claims_confirmed_total",
        "payouts_claims",
        "payouts_indexer_lag_blocks",
        "payouts_indexer_last_height",
        "payouts_http_requests_total",
        "payouts_http_request_duration_seconds",
    ] {
        assert!(
            used.contains(wanted),
            "the dashboard does not show {wanted}"
        );
    }
}
