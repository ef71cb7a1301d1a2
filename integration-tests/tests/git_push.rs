//! The agent never merges: the real git client pushes through `sandbox run` to a local
//! smart-HTTP server (`git http-backend` behind a TLS test upstream, reached with
//! `--connect-to`). A push to `pilot/x` lands; a push to `main`, a delete and a tag are
//! refused as git expects (it prints the reason), the server's refs are unchanged, and each
//! ref update is a `ref_update` record. As root and as nobody. Loopback only.

use std::path::Path;

use integration_tests::flowcheck::verify_chain;
use integration_tests::git_http;
use integration_tests::git_repo::{git, git_out};
use integration_tests::sandbox_harness::{run, tagged, TestDir};
use integration_tests::upstream::{TestCa, Upstream};
use integration_tests::users::each_user;

const HOST: &str = "git.example.com";

fn refs(bare: &Path) -> Vec<String> {
    git_out(bare, &["for-each-ref", "--format=%(refname) %(objectname)"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn pushes_land_only_on_the_agents_branch_and_git_prints_why() {
    for user in each_user() {
        let dir = TestDir::new(user, "git-push");
        // The server: a bare repository with `main` and an older agent branch.
        let srv = dir.root.join("srv");
        std::fs::create_dir_all(&srv).unwrap();
        let bare = srv.join("repo.git");
        git(&srv, &["init", "-q", "--bare", "-b", "main", "repo.git"]);
        let seed = dir.root.join("seed");
        git(&dir.root, &["init", "-q", "-b", "main", "seed"]);
        std::fs::write(seed.join("README.md"), "hello\n").unwrap();
        git(&seed, &["add", "-A"]);
        git(&seed, &["commit", "-qm", "init"]);
        git(
            &seed,
            &[
                "push",
                "-q",
                bare.to_str().unwrap(),
                "main",
                "main:refs/heads/pilot/old",
            ],
        );
        // The workspace: a clone whose origin is the HTTPS server.
        git(
            &dir.root,
            &["clone", "-q", bare.to_str().unwrap(), "ws-clone"],
        );
        std::fs::remove_dir_all(&dir.workspace).unwrap();
        std::fs::rename(dir.root.join("ws-clone"), &dir.workspace).unwrap();
        git(
            &dir.workspace,
            &[
                "remote",
                "set-url",
                "origin",
                &format!("https://{HOST}/repo.git"),
            ],
        );
        dir.own();
        let before = refs(&bare);

        let ca = TestCa::new();
        let up = Upstream::start_with(
            &ca,
            &[HOST],
            &["http/1.1"],
            Some(git_http::backend(srv.clone())),
        );
        let ca_pem = dir.write("upstream-ca.pem", &ca.pem());
        let contract = dir.write(
            "contract.toml",
            &format!(
                "version = 1\n[task]\nid = \"IT-15\"\nclass = \"B\"\nobjective = \"push\"\ndone = []\nrollback = \"none\"\n[files]\nwrite = [\".\"]\n[[network.allow]]\nname = \"git-server\"\nhost = \"{HOST}\"\nmethods = [\"GET\", \"POST\"]\n[log]\npath = \"{}\"\n",
                dir.log_path().display()
            ),
        );
        let c = "-c user.email=a@example.invalid -c user.name=agent";
        let script = format!(
            "git {c} checkout -q -b pilot/x && echo change > f.txt && git add f.txt && git {c} commit -qm change || exit 9\n\
             git push origin pilot/x > push1.txt 2>&1; echo \"PUSH1 $?\"\n\
             git push origin HEAD:main > push2.txt 2>&1; echo \"PUSH2 $?\"\n\
             git push origin :pilot/old > push3.txt 2>&1; echo \"PUSH3 $?\"\n\
             git {c} tag -a v1 -m v1 && git push origin v1 > push4.txt 2>&1; echo \"PUSH4 $?\"\n\
             for f in push1 push2 push3 push4; do echo \"== $f\"; cat $f.txt; done\n"
        );
        let out = run(
            user,
            &dir,
            &[
                "--contract",
                contract.to_str().unwrap(),
                "--connect-to",
                &up.connect_to(HOST),
                "--upstream-ca",
                ca_pem.to_str().unwrap(),
            ],
            &script,
        );
        let ctx = format!("as {}:\n{}", user.label(), out.both());
        assert_eq!(out.code, 0, "{ctx}");
        assert_eq!(tagged(&out.stdout, "PUSH1"), "PUSH1 0", "{ctx}");
        for tag in ["PUSH2", "PUSH3", "PUSH4"] {
            assert_ne!(
                tagged(&out.stdout, tag),
                format!("{tag} 0"),
                "{tag} refused: {ctx}"
            );
        }
        // git prints each refusal with the reason.
        assert!(
            out.stdout
                .contains("the agent may push only to refs/heads/pilot/*"),
            "{ctx}"
        );
        assert!(out.stdout.contains("never deletes a ref"), "{ctx}");
        assert!(out.stdout.contains("never pushes tags"), "{ctx}");
        assert!(out.stdout.contains("[remote rejected]"), "{ctx}");

        // The server: pilot/x is the agent's commit; main, pilot/old and the tags unchanged.
        let after = refs(&bare);
        let agent_head = git_out(&dir.workspace, &["rev-parse", "pilot/x"]);
        assert!(
            after.contains(&format!("refs/heads/pilot/x {agent_head}")),
            "{after:?}"
        );
        for line in &before {
            assert!(after.contains(line), "{line} changed: {after:?}");
        }
        assert!(
            !after.iter().any(|l| l.starts_with("refs/tags/")),
            "{after:?}"
        );
        assert_eq!(after.len(), before.len() + 1, "{after:?}");

        // The log: one ref_update per ref update, allowed or why not.
        let records = verify_chain(&dir.log_path()).expect("the chain verifies");
        let updates: Vec<(String, String)> = records
            .iter()
            .filter(|r| r["event"] == "ref_update")
            .map(|r| {
                (
                    r["detail"]["ref"].as_str().unwrap().to_string(),
                    r["decision"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for expected in [
            ("refs/heads/pilot/x", "allow"),
            ("refs/heads/main", "deny"),
            ("refs/heads/pilot/old", "deny"),
            ("refs/tags/v1", "deny"),
        ] {
            assert!(
                updates.contains(&(expected.0.to_string(), expected.1.to_string())),
                "{expected:?} in {updates:?}"
            );
        }
        let pushes: Vec<&serde_json::Value> = records
            .iter()
            .filter(|r| {
                r["event"] == "decision"
                    && r["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/git-receive-pack"))
            })
            .collect();
        assert_eq!(pushes.len(), 4, "{pushes:#?}");
        assert_eq!(
            pushes.iter().filter(|r| r["decision"] == "allow").count(),
            1
        );
        // The refused pushes never reached the server.
        let posted = up
            .received()
            .into_iter()
            .filter(|r| r.path_and_query.ends_with("git-receive-pack") && r.method == "POST")
            .count();
        assert_eq!(posted, 1, "only the allowed push reached the server");
        // The diagram and the report show the pushes per ref.
        let log = dir.log_path();
        let mermaid = integration_tests::bin::sandbox_output(&["diagram", log.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&mermaid.stdout);
        assert!(text.contains("pushed refs/heads/pilot/x"), "{text}");
        assert!(text.contains("refused refs/heads/main"), "{text}");
        let diagram = dir.root.join("approved.toml");
        let drafted = integration_tests::bin::sandbox_output(&[
            "diagram",
            "--from-contract",
            contract.to_str().unwrap(),
        ]);
        // The draft approves nothing until each edge names its data: the pilot lead's edit.
        let approved: String = String::from_utf8_lossy(&drafted.stdout)
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("data = \"TODO") {
                    "data = \"source code\"".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(&diagram, approved).unwrap();
        let html = dir.root.join("report.html");
        let report = integration_tests::bin::sandbox_output(&[
            "report",
            log.to_str().unwrap(),
            "--approved",
            diagram.to_str().unwrap(),
            "-o",
            html.to_str().unwrap(),
        ]);
        assert!(
            html.exists(),
            "{}{}",
            String::from_utf8_lossy(&drafted.stderr),
            String::from_utf8_lossy(&report.stderr)
        );
        let page = std::fs::read_to_string(&html).unwrap().replace("<wbr>", "");
        assert!(page.contains("Git pushes per ref"), "report");
        assert!(
            page.contains("refs/heads/pilot/old"),
            "the refused delete is listed"
        );
        drop(up);
    }
}
