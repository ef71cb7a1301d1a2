//! Every class of contract error: each names file:line:col, the key, and a hint.

use std::path::PathBuf;

use egress_policy::{ContractError, Diagnostic, PathContext, Policy};

fn ctx() -> PathContext {
    PathContext {
        workspace: PathBuf::from("/work/ws"),
        home: PathBuf::from("/home/agent"),
    }
}

const HEAD_B: &str = "version = 1\n[task]\nid = \"T-1\"\nclass = \"B\"\nobjective = \"o\"\ndone = [\"true\"]\nrollback = \"r\"\n";

fn errors(src: &str) -> Vec<Diagnostic> {
    match Policy::parse(src, "c.toml", &ctx()) {
        Ok(_) => panic!("expected an invalid contract:\n{src}"),
        Err(ContractError { diagnostics }) => {
            assert!(!diagnostics.is_empty());
            diagnostics
        }
    }
}

/// The single diagnostic for `key`, asserting its line and column.
fn one(src: &str, key: &str, line: usize, col: usize) -> Diagnostic {
    let all = errors(src);
    let d = all
        .iter()
        .find(|d| d.key == key)
        .unwrap_or_else(|| panic!("no error for `{key}` in {all:#?}"))
        .clone();
    assert_eq!((d.location.line, d.location.col), (line, col), "{d}");
    assert!(
        d.to_string().starts_with(&format!("c.toml:{line}:{col}: ")),
        "{d}"
    );
    d
}

fn line_of(src: &str, needle: &str) -> usize {
    src.lines()
        .position(|l| l.contains(needle))
        .expect("needle in source")
        + 1
}

fn valid(src: &str) -> Policy {
    Policy::parse(src, "c.toml", &ctx()).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn unknown_keys_get_did_you_mean_everywhere() {
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nmethds = [\"POST\"]\n");
    let d = one(&src, "network.allow[0].methds", line_of(&src, "methds"), 1);
    assert!(
        d.hint
            .as_deref()
            .unwrap()
            .contains("did you mean `methods`"),
        "{d}"
    );

    let src = "version = 1\nverison = 2\n[task]\nid = \"T\"\nclass = \"B\"\nobjective = \"o\"\n";
    let d = one(src, "verison", 2, 1);
    assert!(d.hint.unwrap().contains("`version`"));

    let src = format!("{HEAD_B}[files]\nwrite = [\"src\"]\nreed = [\".\"]\n");
    let d = one(&src, "files.reed", line_of(&src, "reed"), 1);
    assert!(d.hint.unwrap().contains("`read`"));

    let src = "version = 1\n[task]\nid = \"T\"\nclas = \"B\"\nobjective = \"o\"\n";
    let all = errors(src);
    assert!(
        all.iter()
            .any(|d| d.key == "task.clas" && d.hint.as_deref().unwrap().contains("`class`")),
        "{all:#?}"
    );
    assert!(
        all.iter()
            .any(|d| d.key == "task.class" && d.message.contains("missing")),
        "{all:#?}"
    );

    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\ninject = {{ headr = \"x-api-key\", env = \"K\" }}\n");
    let d = one(
        &src,
        "network.allow[0].inject.headr",
        line_of(&src, "headr"),
        12,
    );
    assert!(d.hint.unwrap().contains("`header`"));

    let src = format!("{HEAD_B}[netwrok]\n");
    let d = one(&src, "netwrok", line_of(&src, "netwrok"), 2);
    assert!(d.hint.unwrap().contains("`network`"));

    let src = format!("{HEAD_B}[log]\npaht = \"x\"\n");
    assert!(one(&src, "log.paht", line_of(&src, "paht"), 1)
        .hint
        .unwrap()
        .contains("`path`"));
    let src = format!("{HEAD_B}[env]\npas = [\"X\"]\n");
    assert!(one(&src, "env.pas", line_of(&src, "pas"), 1)
        .hint
        .unwrap()
        .contains("`pass`"));
    let src = format!("{HEAD_B}[secrets]\nactoin = \"log\"\n");
    assert!(one(&src, "secrets.actoin", line_of(&src, "actoin"), 1)
        .hint
        .unwrap()
        .contains("`action`"));
}

#[test]
fn wrong_types() {
    let src = format!(
        "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nport = \"443\"\n"
    );
    let d = one(&src, "network.allow[0].port", line_of(&src, "port ="), 8);
    assert!(
        d.message.contains("expected an integer, found a string"),
        "{d}"
    );
    let src = format!(
        "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nmethods = \"POST\"\n"
    );
    let d = one(
        &src,
        "network.allow[0].methods",
        line_of(&src, "methods"),
        11,
    );
    assert!(d.message.contains("array of strings"), "{d}");
    assert!(d.hint.unwrap().contains("methods = [\"POST\"]"));
    let src = format!(
        "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nintercept = \"no\"\n"
    );
    one(
        &src,
        "network.allow[0].intercept",
        line_of(&src, "intercept"),
        13,
    );
    let src = format!("{HEAD_B}[files]\nread = [\".\", 3]\n");
    one(&src, "files.read[1]", line_of(&src, "read"), 14);
    let src = "version = \"1\"\n[task]\nid = \"T\"\nclass = \"B\"\nobjective = \"o\"\n";
    one(src, "version", 1, 11);
    let src = "version = 2\n[task]\nid = \"T\"\nclass = \"B\"\nobjective = \"o\"\n";
    one(src, "version", 1, 11);
    let src = format!("version = 1\nnetwork = 5\n{}", &HEAD_B[12..]);
    one(&src, "network", 2, 11);
}

#[test]
fn missing_required_keys() {
    let all = errors("[task]\nid = \"T\"\n");
    let keys: Vec<&str> = all.iter().map(|d| d.key.as_str()).collect();
    for k in ["version", "task.objective", "task.class"] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    let all = errors("version = 1\n");
    assert!(all.iter().any(|d| d.key == "task"));
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\n");
    one(
        &src,
        "network.allow[0].host",
        line_of(&src, "[[network.allow]]"),
        1,
    );
}

#[test]
fn bad_regexes() {
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\npaths = [\"^/v1/(chat$\"]\n");
    let d = one(
        &src,
        "network.allow[0].paths[0]",
        line_of(&src, "paths"),
        10,
    );
    assert!(d.message.contains("not a valid regex"), "{d}");
    assert!(d.hint.is_some());
    // a huge regex is refused, not compiled
    let huge = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\npaths = [\"(\\\\w{{100}}){{100}}\"]\n");
    errors(&huge);
    // A pattern that is only valid inside the anchoring group would close it and match every
    // path: `^(?:/v1/x)|(.*)$`. It must be refused on its own terms.
    for escape in ["/v1/x)|(.*", ")|(", "/v1/x)|(?:.*"] {
        let src = format!(
            "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\npaths = [\"{escape}\"]\n"
        );
        let d = one(
            &src,
            "network.allow[0].paths[0]",
            line_of(&src, "paths"),
            10,
        );
        assert!(d.message.contains("not a valid regex"), "{escape}: {d}");
    }
}

#[test]
fn unknown_class_residency_scheme_method_protocol() {
    let src = "version = 1\n[task]\nid = \"T\"\nclass = \"D\"\nobjective = \"o\"\n";
    let d = one(src, "task.class", 4, 9);
    assert!(d.hint.unwrap().contains("\"A\""));
    let src = "version = 1\n[task]\nid = \"T\"\nclass = \"b\"\nobjective = \"o\"\n";
    assert!(one(src, "task.class", 4, 9)
        .hint
        .unwrap()
        .contains("class = \"B\""));
    let src = format!("{HEAD_B}[network]\nresidency = \"eu\"\n");
    one(&src, "network.residency", line_of(&src, "residency"), 13);
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nschemes = [\"htps\"]\n");
    assert!(one(
        &src,
        "network.allow[0].schemes",
        line_of(&src, "schemes"),
        12
    )
    .hint
    .unwrap()
    .contains("\"https\""));
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nmethods = [\"post\"]\n");
    assert!(one(
        &src,
        "network.allow[0].methods",
        line_of(&src, "methods"),
        12
    )
    .hint
    .unwrap()
    .contains("\"POST\""));
    let src = format!(
        "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nprotocol = \"udp\"\n"
    );
    one(
        &src,
        "network.allow[0].protocol",
        line_of(&src, "protocol"),
        12,
    );
    let src = format!("{HEAD_B}[secrets]\naction = \"blok\"\n");
    assert!(one(&src, "secrets.action", line_of(&src, "action"), 10)
        .hint
        .unwrap()
        .contains("\"block\""));
}

#[test]
fn bad_hosts_and_ports() {
    for host in [
        "*",
        "*.com",
        "a*.example.com",
        "api.*.example.com",
        "*.co.uk",
        "exa mple.com",
        "api.example.com:443",
        "127.1",
    ] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"{host}\"\n");
        one(&src, "network.allow[0].host", line_of(&src, "host ="), 8);
    }
    for ip in [
        "127.0.0.1",
        "169.254.169.254",
        "[::1]",
        "0.0.0.0",
        "[fe80::1]",
        "224.0.0.1",
    ] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"{ip}\"\n");
        let d = one(&src, "network.allow[0].host", line_of(&src, "host ="), 8);
        assert!(d.message.contains("never dials"), "{d}");
    }
    // issue 3: private and CGNAT addresses are reached only through the operator's
    // `--connect-to`; the hint says so
    for ip in ["10.0.0.5", "192.168.0.10", "100.64.0.1", "[fd00::5]"] {
        let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"{ip}\"\n");
        let d = one(&src, "network.allow[0].host", line_of(&src, "host ="), 8);
        assert!(d.message.contains("private or CGNAT"), "{d}");
        let hint = d.hint.as_deref().unwrap_or_default();
        assert!(hint.contains("--connect-to"), "{d}");
        assert!(hint.contains("name the host"), "{d}");
    }
    valid(&format!(
        "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"8.8.4.4\"\n"
    ));
    for port in ["0", "65536", "-1"] {
        let src = format!(
            "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nport = {port}\n"
        );
        one(&src, "network.allow[0].port", line_of(&src, "port ="), 8);
    }
}

#[test]
fn duplicate_names_and_conflicting_rules() {
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"x.example.com\"\n[[network.allow]]\nname = \"a\"\nhost = \"y.example.com\"\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[1].name" && d.message.contains("twice")));
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"*.example.com\"\n[[network.allow]]\nname = \"b\"\nhost = \"x.example.com\"\nintercept = false\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[1]" && d.message.contains("intercepts")));
}

#[test]
fn rule_combinations() {
    // inject never over http
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nschemes = [\"http\"]\ninject = {{ header = \"x-api-key\", env = \"KEY\" }}\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].schemes" && d.message.contains("never injected")));
    // inject env must not also be passed in
    let src = format!("{HEAD_B}[env]\npass = [\"KEY\"]\n[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\ninject = {{ header = \"x-api-key\", env = \"KEY\" }}\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].inject.env"));
    // passthrough cannot have methods/paths/inject
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nintercept = false\npaths = [\"/x\"]\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].paths"));
    // tcp cannot have http facts, nor intercept
    let src = format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"git.example.com\"\nport = 2222\nprotocol = \"tcp\"\nmethods = [\"GET\"]\nintercept = true\n");
    let all = errors(&src);
    assert!(all.iter().any(|d| d.key == "network.allow[0].methods"));
    assert!(all.iter().any(|d| d.key == "network.allow[0].intercept"));
    // an empty methods list could never match
    let src = format!(
        "{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nmethods = []\n"
    );
    errors(&src);
}

#[test]
fn class_a_violations() {
    let head_a = "version = 1\n[task]\nid = \"T\"\nclass = \"A\"\nobjective = \"docs\"\n";
    let src =
        format!("{head_a}[files]\nread = [\".\"]\nwrite = [\"docs\", \".github/workflows\"]\n");
    let d = one(&src, "files.write[1]", line_of(&src, "write ="), 18);
    assert!(d.message.contains("protected"), "{d}");
    let src = format!("{head_a}[files]\nwrite = [\"src\"]\n");
    let d = one(&src, "files.write[0]", line_of(&src, "write ="), 10);
    assert!(d.message.contains("class A may write only docs"), "{d}");
    assert!(d.hint.unwrap().contains("class B"));
    let src = format!("{head_a}[files]\nwrite = [\"/tmp/docs\"]\n");
    assert!(one(&src, "files.write[0]", line_of(&src, "write ="), 10)
        .message
        .contains("inside the workspace"));
    let src = format!(
        "{head_a}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nintercept = false\n"
    );
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].intercept"));
    let src = format!("{head_a}[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\nschemes = [\"http\"]\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].schemes"));
    // and a valid class A contract
    valid(&format!("{head_a}[files]\nread = [\".\"]\nwrite = [\"docs\", \"README.md\", \"tests\", \"rustfmt.toml\"]\n"));
}

#[test]
fn class_c_violations() {
    let head_c = "version = 1\n[task]\nid = \"T\"\nclass = \"C\"\nobjective = \"o\"\ndone = [\"make check\"]\nrollback = \"r\"\n";
    let all = errors(head_c);
    assert!(all.iter().any(|d| d.key == "task.approved_by"), "{all:#?}");
    assert!(all.iter().any(|d| d.key == "task.ticket"), "{all:#?}");
    let ok_head = format!("{head_c}approved_by = \"sec-lead\"\nticket = \"SEC-1\"\n");
    valid(&ok_head);
    let src = format!("{ok_head}[[network.allow]]\nname = \"a\"\nhost = \"*.example.com\"\n");
    assert!(
        one(&src, "network.allow[0].host", line_of(&src, "host ="), 8)
            .message
            .contains("wildcard")
    );
    let src = format!("{ok_head}[[network.allow]]\nname = \"a\"\nhost = \"git.example.com\"\nport = 2222\nprotocol = \"tcp\"\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].protocol"));
    let src = format!("{ok_head}[env]\npass = [\"GITHUB_TOKEN\"]\n");
    assert!(errors(&src).iter().any(|d| d.key == "env.pass[0]"));
    let src = format!("{ok_head}[files]\nwrite = [\"~/notes\"]\n");
    assert!(errors(&src).iter().any(|d| d.key == "files.write[0]"));
    // class C requires done and rollback
    let src = "version = 1\n[task]\nid = \"T\"\nclass = \"C\"\nobjective = \"o\"\napproved_by = \"a\"\nticket = \"t\"\n";
    let all = errors(src);
    assert!(all.iter().any(|d| d.key == "task.done"));
    assert!(all.iter().any(|d| d.key == "task.rollback"));
}

#[test]
fn protected_and_credential_grants_in_any_class() {
    for path in [
        ".git/hooks",
        ".git/config",
        "sub/.git/hooks/pre-commit",
        ".github/workflows/ci.yml",
        ".gitmodules",
        ".husky",
        ".envrc",
        ".vscode/tasks.json",
        ".cargo/config.toml",
        "Jenkinsfile",
        "~/.bashrc",
        "~/.config/fish/config.fish",
        "~/.zshenv",
    ] {
        let src = format!("{HEAD_B}[files]\nwrite = [\"{path}\"]\n");
        let all = errors(&src);
        assert!(
            all.iter()
                .any(|d| d.key == "files.write[0]" && d.message.contains("protected")),
            "{path}: {all:#?}"
        );
    }
    for path in [
        "~/.ssh",
        "~/.ssh/id_ed25519",
        "~/.aws/credentials",
        "~/.gnupg",
        "~/.kube/config",
        "~/.docker/config.json",
        "~/.netrc",
        "~/.git-credentials",
        "~/.config/gcloud",
        "/var/run/docker.sock",
    ] {
        for kind in ["read", "write"] {
            let src = format!("{HEAD_B}[files]\n{kind} = [\"{path}\"]\n");
            let all = errors(&src);
            assert!(
                all.iter().any(
                    |d| d.key == format!("files.{kind}[0]") && d.message.contains("credential")
                ),
                "{kind} {path}: {all:#?}"
            );
        }
    }
    // a broader grant is fine
    valid(&format!(
        "{HEAD_B}[files]\nread = [\"~\"]\nwrite = [\".\"]\ndeny = [\"~/.ssh\"]\n"
    ));
}

#[test]
fn system_directories_are_never_writable() {
    for path in [
        "/",
        "/etc",
        "/etc/cron.d",
        "/usr/local/bin",
        "/proc/self/root",
        "/dev/shm",
        "/run/user/0",
    ] {
        let src = format!("{HEAD_B}[files]\nwrite = [\"{path}\"]\n");
        let all = errors(&src);
        assert!(
            all.iter()
                .any(|d| d.key == "files.write[0]" && d.message.contains("system directory")),
            "{path}: {all:#?}"
        );
    }
    valid(&format!(
        "{HEAD_B}[files]\nread = [\"/usr/share/doc\"]\nwrite = [\"/tmp/scratch\"]\n"
    ));
    // a workspace that lies in such a tree (a CI runner's /var/lib/jenkins/...) stays writable
    let ci = PathContext {
        workspace: PathBuf::from("/var/lib/jenkins/workspace/app"),
        home: PathBuf::from("/var/lib/jenkins"),
    };
    let src = format!("{HEAD_B}[files]\nwrite = [\".\"]\n");
    Policy::parse(&src, "c.toml", &ci).unwrap_or_else(|e| panic!("{e}"));
    assert!(Policy::parse(
        &format!("{HEAD_B}[files]\nwrite = [\"/var/lib/other\"]\n"),
        "c.toml",
        &ci
    )
    .is_err());
}

#[test]
fn bad_file_entries() {
    for entry in ["../other", "src/../../etc", "", "src/*.rs", "~root/x"] {
        let src = format!("{HEAD_B}[files]\nread = [\"{entry}\"]\n");
        one(&src, "files.read[0]", line_of(&src, "read ="), 9);
    }
}

#[test]
fn residency_violations() {
    let head_eu = format!("{HEAD_B}[network]\nresidency = \"EU\"\n");
    let src =
        format!("{head_eu}[[network.allow]]\nname = \"claude\"\nhost = \"api.anthropic.com\"\n");
    let d = one(
        &src,
        "network.allow[0].host",
        line_of(&src, "api.anthropic.com"),
        8,
    );
    assert!(d.message.contains("outside the EU"), "{d}");
    assert!(d.hint.unwrap().contains("Bedrock"));
    // unplaceable without attestation
    let src =
        format!("{head_eu}[[network.allow]]\nname = \"azure\"\nhost = \"acme.openai.azure.com\"\n");
    let d = one(&src, "network.allow[0].region", line_of(&src, "acme"), 8);
    assert!(d.hint.unwrap().contains("region = "));
    let src = format!("{head_eu}[[network.allow]]\nname = \"corp\"\nhost = \"llm.corp.example\"\n");
    one(
        &src,
        "network.allow[0].region",
        line_of(&src, "llm.corp"),
        8,
    );
    // attestation outside the EU
    let src = format!("{head_eu}[[network.allow]]\nname = \"azure\"\nhost = \"acme.openai.azure.com\"\nregion = \"eastus\"\n");
    one(&src, "network.allow[0].region", line_of(&src, "eastus"), 10);
    // wildcard covering a non-EU catalog host
    let src = format!(
        "{head_eu}[[network.allow]]\nname = \"w\"\nhost = \"*.api.openai.com\"\nregion = \"EU\"\n"
    );
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].host"));
    // EU attestation makes an unplaceable host valid
    let p = valid(&format!("{head_eu}[[network.allow]]\nname = \"azure\"\nhost = \"acme.openai.azure.com\"\nregion = \"swedencentral\"\n"));
    assert_eq!(
        p.contract().network.allow[0].region.as_deref(),
        Some("swedencentral")
    );
}

#[test]
fn syntax_errors_have_positions() {
    let src = "version = 1\n[task\nid = \"T\"\n";
    let all = errors(src);
    assert!(all[0].message.starts_with("TOML syntax"), "{all:#?}");
    assert_eq!(all[0].location.line, 2);
    // duplicate keys are syntax errors too
    let all = errors("version = 1\nversion = 1\n");
    assert_eq!(all[0].location.line, 2, "{all:#?}");
}

#[test]
fn all_errors_are_reported_in_source_order() {
    let src = format!("{HEAD_B}[files]\nreed = [\".\"]\n[[network.allow]]\nname = \"a\"\nhost = \"*\"\npaths = [\"(\"]\n");
    let all = errors(&src);
    assert!(all.len() >= 3, "{all:#?}");
    let lines: Vec<usize> = all.iter().map(|d| d.location.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    let text = ContractError { diagnostics: all }.to_string();
    assert!(text.contains("errors"), "{text}");
}

#[test]
fn relative_context_is_refused() {
    let bad = PathContext {
        workspace: PathBuf::from("ws"),
        home: PathBuf::from("/home/a"),
    };
    assert!(Policy::parse(HEAD_B, "c.toml", &bad).is_err());
}

#[test]
fn warnings() {
    let src = format!("{HEAD_B}[files]\nread = [\".\"]\n[log]\npath = \"flows.jsonl\"\n");
    let p = valid(&src);
    assert!(
        p.warnings()
            .iter()
            .any(|w| w.key == "log.path" && w.message.contains("inside the workspace")),
        "{:?}",
        p.warnings()
    );
    assert!(p.warnings().iter().any(|w| w.key == "network.allow"));
    let p = valid(&format!("{HEAD_B}[files]\nread = [\".\"]\n[log]\npath = \"/var/log/sandbox/flows.jsonl\"\notlp = \"http://127.0.0.1:4318\"\n"));
    assert!(!p.warnings().iter().any(|w| w.key == "log.path"));
    assert_eq!(
        p.contract().log.otlp.as_deref(),
        Some("http://127.0.0.1:4318")
    );
    let src = format!("{HEAD_B}[log]\notlp = \"ftp://x\"\n");
    errors(&src);
}

/// `inject` forms: each takes its own keys; an unknown form, a key of another form, a bad
/// region or profile, and a SigV4 rule whose host names no region are errors at their place.
#[test]
fn inject_forms_take_their_own_keys() {
    use egress_policy::Inject;
    let rule = |host: &str, inject: &str| {
        format!("{HEAD_B}[[network.allow]]\nname = \"a\"\nhost = \"{host}\"\ninject = {inject}\n")
    };
    let bedrock = "bedrock-runtime.eu-central-1.amazonaws.com";
    let p = valid(&rule(bedrock, "{ form = \"aws-sigv4\" }"));
    let i = p.contract().network.allow[0].inject.clone().unwrap();
    assert_eq!(
        i,
        Inject::AwsSigv4 {
            service: "bedrock".into(),
            region: None,
            profile: None
        }
    );
    assert_eq!(i.signing_region(bedrock).as_deref(), Some("eu-central-1"));
    assert_eq!(i.header(), "authorization");
    let p = valid(&rule(
        "api.example.com",
        "{ form = \"aws-sigv4\", region = \"eu-west-3\", service = \"execute-api\", profile = \"pilot\" }",
    ));
    let i = p.contract().network.allow[0].inject.clone().unwrap();
    assert_eq!(
        i.signing_region("api.example.com").as_deref(),
        Some("eu-west-3")
    );
    assert_eq!(i.credential_key(), "aws-sigv4:pilot");
    let p = valid(&rule(
        "api.example.com",
        "{ form = \"bearer\", env = \"OPENAI_API_KEY\" }",
    ));
    let i = p.contract().network.allow[0].inject.clone().unwrap();
    assert_eq!(i.header_value("sk-1"), "Bearer sk-1");
    assert_eq!(
        (i.header(), i.env()),
        ("authorization", Some("OPENAI_API_KEY"))
    );
    let p = valid(&rule(
        "x.openai.azure.com",
        "{ form = \"azure-api-key\", env = \"AZ\" }",
    ));
    let i = p.contract().network.allow[0].inject.clone().unwrap();
    assert_eq!(
        (i.header(), i.header_value("k")),
        ("api-key", "k".to_string())
    );

    let src = rule("api.example.com", "{ form = \"baerer\", env = \"K\" }");
    let d = one(
        &src,
        "network.allow[0].inject.form",
        line_of(&src, "baerer"),
        19,
    );
    assert!(d.hint.unwrap().contains("did you mean `bearer`"));
    let src = rule(
        "api.example.com",
        "{ form = \"bearer\", header = \"x-api-key\", env = \"K\" }",
    );
    let d = one(
        &src,
        "network.allow[0].inject.header",
        line_of(&src, "header ="),
        29,
    );
    assert!(
        d.message
            .contains("does not apply to the `bearer` inject form"),
        "{d}"
    );
    let src = rule(
        bedrock,
        "{ form = \"aws-sigv4\", env = \"AWS_SECRET_ACCESS_KEY\" }",
    );
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].inject.env" && d.message.contains("does not apply")));
    let src = rule("api.example.com", "{ form = \"aws-sigv4\" }");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].inject.region"
            && d.message.contains("cannot be read from this rule's host")));
    let src = rule(bedrock, "{ form = \"aws-sigv4\", region = \"europe\" }");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].inject.region"));
    let src = rule(bedrock, "{ form = \"aws-sigv4\", profile = \"a b\" }");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].inject.profile"));
    let src = rule("api.example.com", "{ form = \"bearer\" }");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].inject.env" && d.message.contains("missing")));
    // the old rules hold for every form: no wildcard host, no plain http, no env passed in
    let src = rule("*.example.com", "{ form = \"bearer\", env = \"K\" }");
    assert!(!errors(&src).is_empty());
    let src = format!("{HEAD_B}[env]\npass = [\"K\"]\n[[network.allow]]\nname = \"a\"\nhost = \"api.example.com\"\ninject = {{ form = \"azure-api-key\", env = \"K\" }}\n");
    assert!(errors(&src)
        .iter()
        .any(|d| d.key == "network.allow[0].inject.env"));
}

#[test]
fn sockets_and_limits_are_checked_where_they_are_written() {
    let p = valid(&format!("{HEAD_B}[sockets]\nconnect = [\"/run/user/1000/ssh.sock\", \"src/host.sock\"]\ninternal = true\n[limits]\npids = 1024\nmemory = \"2G\"\nnice = 10\n"));
    let c = p.contract();
    assert_eq!(
        c.sockets.connect,
        vec![
            PathBuf::from("/run/user/1000/ssh.sock"),
            PathBuf::from("/work/ws/src/host.sock")
        ]
    );
    assert!(c.sockets.internal && c.sockets.unix_sockets_needed());
    assert_eq!(c.limits.pids, 1024);
    assert_eq!(
        c.limits.memory,
        egress_policy::contract::MemoryLimit::Bytes(2 << 30)
    );
    assert_eq!(c.limits.nice, 10);
    // every grant is a warning, each where it is written
    assert!(p.warnings().iter().any(|w| w.key == "sockets.connect[0]"));
    assert!(p.warnings().iter().any(|w| w.key == "sockets.internal"));

    // the defaults: no socket, 4096 pids, half the memory
    let d = valid(HEAD_B);
    assert!(!d.contract().sockets.unix_sockets_needed());
    assert_eq!(d.contract().limits.pids, 4096);

    let src = format!("{HEAD_B}[sockets]\nconnect = [\"/var/run/docker.sock\"]\n");
    let e = one(&src, "sockets.connect[0]", line_of(&src, "docker"), 12);
    assert!(e.message.contains("never accessible"), "{e}");
    let src = format!("{HEAD_B}[sockets]\nconnect = [\"../up.sock\"]\n");
    one(&src, "sockets.connect[0]", line_of(&src, "up.sock"), 12);
    let src = format!("{HEAD_B}[sockets]\nlisten = true\n");
    one(&src, "sockets.listen", line_of(&src, "listen"), 1);

    let src = format!("{HEAD_B}[limits]\npids = 10\n");
    let e = one(&src, "limits.pids", line_of(&src, "pids"), 8);
    assert!(e.message.contains("between 300"), "{e}");
    let src = format!("{HEAD_B}[limits]\nmemory = \"lots\"\n");
    one(&src, "limits.memory", line_of(&src, "memory"), 10);
    let src = format!("{HEAD_B}[limits]\nmemory = \"1M\"\n");
    let e = one(&src, "limits.memory", line_of(&src, "memory"), 10);
    assert!(e.message.contains("64M"), "{e}");
    let src = format!("{HEAD_B}[limits]\nnice = 20\n");
    one(&src, "limits.nice", line_of(&src, "nice"), 8);
    let src = format!("{HEAD_B}[limits]\npids = \"many\"\n");
    one(&src, "limits.pids", line_of(&src, "pids"), 8);
}

#[test]
fn unprotect_lifts_one_protected_path_inside_a_write_grant_with_a_warning() {
    let p = valid(&format!(
        "{HEAD_B}[files]\nwrite = [\".\"]\nunprotect = [\"tests/fixtures/repo.git/hooks\", \".vscode/settings.json\"]\n"
    ));
    assert_eq!(
        p.file_plan().unprotected,
        vec![
            PathBuf::from("/work/ws/tests/fixtures/repo.git/hooks"),
            PathBuf::from("/work/ws/.vscode/settings.json")
        ]
    );
    assert!(p.warnings().iter().any(|w| w.key == "files.unprotect[1]"));
    // not a protected path
    let src = format!("{HEAD_B}[files]\nwrite = [\".\"]\nunprotect = [\"src/main.rs\"]\n");
    let e = one(&src, "files.unprotect[0]", line_of(&src, "unprotect"), 14);
    assert!(e.message.contains("not a protected path"), "{e}");
    // outside every write grant
    let src = format!("{HEAD_B}[files]\nwrite = [\"docs\"]\nunprotect = [\".envrc\"]\n");
    let e = one(&src, "files.unprotect[0]", line_of(&src, "unprotect"), 14);
    assert!(e.message.contains("not inside a `write` entry"), "{e}");
}
