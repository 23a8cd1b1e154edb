//! The health-check engine with fake checkers on tokio's paused clock:
//! every delay below is virtual time, asserted exactly.

mod health {
    use std::{
        collections::{HashMap, VecDeque},
        net::IpAddr,
        os::unix::fs::PermissionsExt,
        path::{Path, PathBuf},
        sync::{Arc, Mutex},
        time::Duration,
    };

    use tokio::{sync::watch, time::Instant};
    use xvs::{
        config::{
            self,
            model::{self as cm, Config, RealServer, VirtualServer},
            LoadOptions,
        },
        health::{
            engine::{apply, Engine, HealthView, RealHealth, ServiceHealth, SorryServer},
            quorum::Quorum,
            BoxFuture, Checker, Outcome, RealId,
        },
        model::{Protocol, RealSpec, SchedulerKind, ServiceId, ServiceSpec},
    };

    // ------------------------------------------------------------ fakes

    /// One fake probe: answers from a script, then repeats its last answer.
    struct Fake {
        script: Mutex<VecDeque<Outcome>>,
        last: Mutex<Outcome>,
        calls: Mutex<Vec<Instant>>,
        name: String,
    }

    impl Fake {
        fn push(&self, outcomes: impl IntoIterator<Item = Outcome>) {
            self.script.lock().unwrap().extend(outcomes);
        }

        fn calls(&self) -> Vec<Instant> {
            self.calls.lock().unwrap().clone()
        }
    }

    struct FakeChecker(Arc<Fake>);

    impl Checker for FakeChecker {
        fn describe(&self) -> String {
            self.0.name.clone()
        }

        fn check(&self) -> BoxFuture<'_, Outcome> {
            Box::pin(async move {
                self.0.calls.lock().unwrap().push(Instant::now());
                let next = self.0.script.lock().unwrap().pop_front();
                let mut last = self.0.last.lock().unwrap();
                if let Some(o) = next {
                    *last = o;
                }
                last.clone()
            })
        }
    }

    /// The fakes of a test, by (real address, checker index); the same
    /// fake serves a checker again after a reload.
    #[derive(Clone, Default)]
    struct Fakes(Arc<Mutex<FakeMap>>);

    type FakeMap = HashMap<(IpAddr, usize), Arc<Fake>>;

    impl Fakes {
        fn get(&self, addr: &str, index: usize) -> Arc<Fake> {
            let addr: IpAddr = addr.parse().unwrap();
            self.0
                .lock()
                .unwrap()
                .entry((addr, index))
                .or_insert_with(|| {
                    Arc::new(Fake {
                        script: Mutex::new(VecDeque::new()),
                        last: Mutex::new(Outcome::up("connected")),
                        calls: Mutex::new(Vec::new()),
                        name: format!("TCP_CHECK {addr}:80#{index}"),
                    })
                })
                .clone()
        }

        fn factory(
            &self,
        ) -> impl FnMut(
            &Config,
            &VirtualServer,
            &RealServer,
            &cm::Checker,
        ) -> anyhow::Result<Box<dyn Checker>>
               + '_ {
            move |_, _, rs, ck| {
                let index = rs
                    .checkers
                    .iter()
                    .position(|c| std::ptr::eq(c, ck))
                    .unwrap();
                Ok(Box::new(FakeChecker(self.get(&rs.addr.to_string(), index))))
            }
        }
    }

    // ----------------------------------------------------------- helpers

    fn parse(text: &str) -> Config {
        let opts = LoadOptions {
            lenient: false,
            config_id: Some("test".into()),
        };
        let (config, diags) = config::parse_str("test.conf", text, &opts);
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.severity == config::Severity::Error)
            .map(|d| d.to_string())
            .collect();
        config.unwrap_or_else(|| panic!("{errors:#?}"))
    }

    /// A TCP virtual server on 10.0.0.100:80 with `body` inside.
    fn vs(body: &str) -> String {
        format!(
            "virtual_server 10.0.0.100 80 {{\n  lvs_sched rr\n  lvs_method DR\n  protocol TCP\n{body}}}\n"
        )
    }

    fn tcp_real(addr: &str, extra: &str, check: &str) -> String {
        format!("  real_server {addr} 80 {{\n{extra}    TCP_CHECK {{\n{check}    }}\n  }}\n")
    }

    fn service() -> ServiceId {
        ServiceId {
            vip: "10.0.0.100".parse().unwrap(),
            port: 80,
            proto: Protocol::Tcp,
        }
    }

    fn rid(addr: &str) -> RealId {
        RealId {
            service: service(),
            addr: addr.parse().unwrap(),
            port: 80,
        }
    }

    fn down(why: &str) -> Outcome {
        Outcome::down(why)
    }

    fn up() -> Outcome {
        Outcome::up("connected")
    }

    /// Waits (virtual time, bounded) until `f` holds for the view.
    async fn until(rx: &mut watch::Receiver<HealthView>, f: impl FnMut(&HealthView) -> bool) {
        tokio::time::timeout(Duration::from_secs(3600), rx.wait_for(f))
            .await
            .expect("state never reached")
            .unwrap();
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    /// A temporary directory every user may write (scripts run as nobody),
    /// removed when dropped.
    struct Scratch(PathBuf);

    impl std::ops::Deref for Scratch {
        type Target = Path;

        fn deref(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn scratch(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("xvs-health-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        Scratch(dir)
    }

    /// A script appending its arguments (after sleeping `sleep` seconds)
    /// as one line to `out`.
    fn script(dir: &Path, name: &str, sleep: u32, out: &Path) -> String {
        let path = dir.join(name);
        let body = format!(
            "#!/bin/sh\nsleep {sleep}\necho \"$@\" >> {}\n",
            out.display()
        );
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    /// The lines of `path` once it has `n` (real time: scripts are real
    /// processes; blocking here also holds the paused clock).
    fn lines(path: &Path, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            if lines.len() >= n || std::time::Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // ------------------------------------------------------------- tests

    #[tokio::test(start_paused = true)]
    async fn down_exactly_after_retry_plus_one_failures_then_up_on_one_success() {
        let fakes = Fakes::default();
        let f = fakes.get("10.0.0.11", 0);
        f.push([
            up(),
            down("connection refused"),
            down("connection refused"),
            down("connection refused"),
        ]);
        let check = "      retry 2\n      delay_before_retry 3\n      warmup 0\n";
        let config = parse(&vs(&format!(
            "  delay_loop 10\n{}",
            tcp_real("10.0.0.11", "", check)
        )));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let mut rx = engine.start();
        let id = rid("10.0.0.11");

        until(&mut rx, |v| !v.reals[&id].up).await;
        let down_at = Instant::now();
        let calls = f.calls();
        let gaps: Vec<f64> = calls.windows(2).map(|w| secs(w[1] - w[0])).collect();
        // First check, then delay_loop, then two retries delay_before_retry apart.
        assert_eq!(gaps, [10.0, 3.0, 3.0]);
        assert_eq!(down_at, calls[3]);
        assert!(rx.borrow().reals[&id].reason.contains("connection refused"));
        assert!(rx.borrow().reals[&id].reason.contains("after 2 retries"));

        // While down there are no retries: the next probe is a delay_loop
        // later, and one success brings the real back.
        f.push([up()]);
        until(&mut rx, |v| v.reals[&id].up).await;
        assert_eq!(secs(Instant::now() - down_at), 10.0);
        assert_eq!(f.calls().len(), 5);
        engine.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_failure_counts_at_once() {
        // keepalived starts every checker with its retries used up.
        let fakes = Fakes::default();
        let f = fakes.get("10.0.0.11", 0);
        f.push([down("timeout")]);
        let check = "      retry 3\n      warmup 0\n";
        let config = parse(&vs(&format!(
            "  delay_loop 10\n{}",
            tcp_real("10.0.0.11", "", check)
        )));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let mut rx = engine.start();
        until(&mut rx, |v| !v.reals[&rid("10.0.0.11")].up).await;
        assert_eq!(f.calls().len(), 1);
        assert_eq!(Instant::now(), f.calls()[0]);
    }

    #[tokio::test(start_paused = true)]
    async fn alpha_starts_down_and_comes_up_on_its_first_success() {
        let fakes = Fakes::default();
        let config = parse(&vs(&format!(
            "  delay_loop 10\n  alpha\n{}{}{}",
            tcp_real("10.0.0.11", "", "      warmup 0\n"),
            tcp_real(
                "10.0.0.12",
                "    alpha no\n    inhibit_on_failure\n",
                "      warmup 0\n"
            ),
            "  real_server 10.0.0.13 80 {\n    weight 2\n  }\n",
        )));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        // Down before anything ran, so the first push already leaves it out.
        let view = engine.view();
        assert!(!view.reals[&rid("10.0.0.11")].up);
        assert!(view.reals[&rid("10.0.0.12")].up);
        assert!(view.reals[&rid("10.0.0.11")].reason.contains("alpha"));
        assert!(view.reals[&rid("10.0.0.12")].inhibit_on_failure);
        assert!(!view.reals[&rid("10.0.0.11")].inhibit_on_failure);
        // A real without checkers is always up.
        let plain = &view.reals[&rid("10.0.0.13")];
        assert!(plain.up && plain.weight == 2 && plain.reason == "no checkers");
        let mut rx = engine.start();
        until(&mut rx, |v| v.reals[&rid("10.0.0.11")].up).await;
        assert_eq!(Instant::now(), fakes.get("10.0.0.11", 0).calls()[0]);
    }

    #[tokio::test(start_paused = true)]
    async fn warmup_delays_the_first_check_within_its_range() {
        let fakes = Fakes::default();
        let reals: String = (1..=50)
            .map(|i| tcp_real(&format!("10.0.1.{i}"), "", "      warmup 5\n"))
            .collect();
        let config = parse(&vs(&format!("  delay_loop 60\n{reals}")));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let start = Instant::now();
        engine.start();
        tokio::time::sleep(Duration::from_secs(30)).await;
        let firsts: Vec<f64> = (1..=50)
            .map(|i| {
                let calls = fakes.get(&format!("10.0.1.{i}"), 0).calls();
                assert_eq!(calls.len(), 1, "one check in 30 s with delay_loop 60");
                secs(calls[0] - start)
            })
            .collect();
        assert!(
            firsts.iter().all(|&t| (0.0..=5.0).contains(&t)),
            "{firsts:?}"
        );
        // Spread, not bunched at one end.
        assert!(firsts.iter().any(|&t| t < 2.0) && firsts.iter().any(|&t| t > 3.0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_real_with_two_checkers_is_up_only_when_both_are() {
        let fakes = Fakes::default();
        let (a, b) = (fakes.get("10.0.0.11", 0), fakes.get("10.0.0.11", 1));
        // One probe per 10 s cycle: the real is down from cycle 1 (a fails)
        // to cycle 4 (b recovers last).
        a.push([up(), down("a refused"), down("a refused"), up(), up()]);
        b.push([up(), up(), down("b timeout"), down("b timeout"), up()]);
        let check = "      retry 0\n      warmup 0\n";
        let real = format!(
            "  real_server 10.0.0.11 80 {{\n    TCP_CHECK {{\n{check}    }}\n    TCP_CHECK {{\n      connect_port 8080\n{check}    }}\n  }}\n"
        );
        let config = parse(&vs(&format!("  delay_loop 10\n{real}")));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let start = Instant::now();
        let mut rx = engine.start();
        let id = rid("10.0.0.11");
        until(&mut rx, |v| !v.reals[&id].up).await;
        let t = secs(Instant::now() - start);
        assert!((10.0..11.0).contains(&t), "{t}");
        until(&mut rx, |v| v.reals[&id].up).await;
        let t = secs(Instant::now() - start);
        assert!((40.0..41.0).contains(&t), "{t}");
        // b's recovery, the last, brought it up.
        assert_eq!(b.calls().len(), 5);
        assert_eq!(Instant::now(), b.calls()[4]);
        assert!(a.calls().len() >= 4);
    }

    #[tokio::test(start_paused = true)]
    async fn misc_dynamic_weight_is_the_real_weight_while_up() {
        let fakes = Fakes::default();
        let f = fakes.get("10.0.0.11", 0);
        let weighted = |w| Outcome {
            up: true,
            reason: format!("exit {}", w + 2),
            weight: Some(w),
        };
        f.push([weighted(7), up(), down("exit 1")]);
        let real = "  real_server 10.0.0.11 80 {\n    weight 3\n    MISC_CHECK {\n      misc_path \"/bin/true\"\n      misc_dynamic\n      warmup 0\n    }\n  }\n";
        let config = parse(&vs(&format!("  delay_loop 10\n{real}")));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let id = rid("10.0.0.11");
        assert_eq!(engine.view().reals[&id].weight, 3);
        let mut rx = engine.start();
        until(&mut rx, |v| v.reals[&id].weight == 7).await;
        assert_eq!(rx.borrow().services[&service()].live_weight, 7);
        // Exit 0 (no dynamic weight): the configured weight again.
        until(&mut rx, |v| v.reals[&id].weight == 3).await;
        until(&mut rx, |v| !v.reals[&id].up).await;
        assert_eq!(rx.borrow().services[&service()].live_weight, 0);
    }

    fn spec(reals: &[(&str, u32)]) -> ServiceSpec {
        ServiceSpec {
            id: service(),
            scheduler: SchedulerKind::Wrr,
            persistence: None,
            reals: reals
                .iter()
                .map(|(addr, weight)| RealSpec {
                    addr: addr.parse().unwrap(),
                    port: 80,
                    weight: *weight,
                    mac: [2, 0, 0, 0, 0, 1],
                    local: false,
                })
                .collect(),
        }
    }

    fn health(up: bool, weight: u32, inhibit: bool) -> RealHealth {
        RealHealth {
            up,
            weight,
            inhibit_on_failure: inhibit,
            reason: String::new(),
        }
    }

    fn weights(s: &ServiceSpec) -> Vec<(String, u32)> {
        s.reals
            .iter()
            .map(|r| (r.addr.to_string(), r.weight))
            .collect()
    }

    #[test]
    fn apply_removes_down_reals_or_inhibits_them_to_weight_zero() {
        let specs = [spec(&[
            ("10.0.0.11", 1),
            ("10.0.0.12", 1),
            ("10.0.0.13", 1),
            ("10.0.0.14", 2),
        ])];
        let mut view = HealthView::default();
        view.reals.insert(rid("10.0.0.11"), health(true, 5, false));
        view.reals.insert(rid("10.0.0.12"), health(false, 1, true));
        view.reals.insert(rid("10.0.0.13"), health(false, 1, false));
        // 10.0.0.14 is not in the view (an xvsadm edit): left alone.
        let out = apply(&specs, &view, |_| None, |_| false);
        let want = [("10.0.0.11", 5), ("10.0.0.12", 0), ("10.0.0.14", 2)];
        assert_eq!(weights(&out[0]), want.map(|(a, w)| (a.to_owned(), w)));
    }

    #[test]
    fn apply_puts_the_sorry_server_in_when_quorum_is_lost() {
        let specs = [spec(&[("10.0.0.11", 1), ("10.0.0.12", 1)])];
        let sorry = SorryServer {
            addr: "10.0.0.99".parse().unwrap(),
            port: 80,
            inhibit: true,
        };
        let mut view = HealthView::default();
        view.reals.insert(rid("10.0.0.11"), health(true, 1, true));
        view.reals.insert(rid("10.0.0.12"), health(false, 1, false));
        let mut svc = ServiceHealth {
            quorum_ok: true,
            sorry_active: false,
            sorry_server: Some(sorry),
            live_weight: 1,
            quorum: Quorum::new(1, 0, 2),
        };
        view.services.insert(service(), svc.clone());
        let mac = |_| Some([2, 0, 0, 0, 0, 99]);
        // Quorum: reals as they are; an inhibited sorry server waits at 0.
        let out = apply(&specs, &view, mac, |_| false);
        let want = [("10.0.0.11", 1), ("10.0.0.99", 0)];
        assert_eq!(weights(&out[0]), want.map(|(a, w)| (a.to_owned(), w)));
        assert_eq!(out[0].reals[1].mac, [2, 0, 0, 0, 0, 99]);
        // Lost: the sorry server in; inhibited reals at 0, others out.
        svc.quorum_ok = false;
        svc.sorry_active = true;
        view.services.insert(service(), svc.clone());
        let out = apply(&specs, &view, mac, |_| false);
        let want = [("10.0.0.11", 0), ("10.0.0.99", 1)];
        assert_eq!(weights(&out[0]), want.map(|(a, w)| (a.to_owned(), w)));
        // Without sorry_server_inhibit the waiting sorry server is absent.
        svc.quorum_ok = true;
        svc.sorry_active = false;
        svc.sorry_server = Some(SorryServer {
            inhibit: false,
            ..sorry
        });
        view.services.insert(service(), svc);
        let out = apply(&specs, &view, mac, |_| false);
        assert_eq!(weights(&out[0]), [("10.0.0.11".to_owned(), 1)]);
    }

    #[tokio::test(start_paused = true)]
    async fn quorum_loss_and_regain_with_hysteresis() {
        let dir = scratch("quorum");
        let out = dir.join("out");
        let notify = script(&dir, "notify.sh", 0, &out);
        let fakes = Fakes::default();
        // Cycle by cycle (10 s), reals 1 to 4 go down then come back.
        let plans = ["UDDDDUUU", "UUDDDDUU", "UUUDDDDU", "UUUUDDDD", "UUUUUUUU"];
        let mut reals = String::new();
        for (i, plan) in plans.iter().enumerate() {
            let addr = format!("10.0.0.{}", 11 + i);
            fakes.get(&addr, 0).push(plan.chars().map(|c| {
                if c == 'U' {
                    up()
                } else {
                    down("refused")
                }
            }));
            reals += &tcp_real(&addr, "", "      retry 0\n      warmup 0\n");
        }
        let head = format!(
            "  delay_loop 10\n  quorum 3\n  hysteresis 1\n  sorry_server 10.0.0.99 80\n  quorum_up \"{notify} quorum up\"\n  quorum_down \"{notify} quorum down\"\n"
        );
        let config = parse(&vs(&format!("{head}{reals}")));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let start = Instant::now();
        let mut rx = engine.start();
        let svc = service();
        // Five live: started with quorum (3 + 1 <= 5).
        assert!(rx.borrow().services[&svc].quorum_ok);
        assert_eq!(lines(&out, 1), ["quorum up"]);

        // Kept at 2 (= 3 - 1), lost at 1, in cycle 4.
        until(&mut rx, |v| !v.services[&svc].quorum_ok).await;
        let t = secs(Instant::now() - start);
        assert!((40.0..41.0).contains(&t), "{t}");
        let view = rx.borrow().clone();
        assert_eq!(view.services[&svc].live_weight, 1);
        assert!(view.services[&svc].sorry_active);
        let specs = [spec(&[
            ("10.0.0.11", 1),
            ("10.0.0.12", 1),
            ("10.0.0.13", 1),
            ("10.0.0.14", 1),
            ("10.0.0.15", 1),
        ])];
        let applied = apply(&specs, &view, |_| None, |_| false);
        assert_eq!(weights(&applied[0]), [("10.0.0.99".to_owned(), 1)]);
        assert_eq!(lines(&out, 2), ["quorum up", "quorum down"]);

        // Regained only at 4 (= 3 + 1), in cycle 7: the reals are back.
        until(&mut rx, |v| v.services[&svc].quorum_ok).await;
        let t = secs(Instant::now() - start);
        assert!((70.0..71.0).contains(&t), "{t}");
        let view = rx.borrow().clone();
        assert_eq!(view.services[&svc].live_weight, 4);
        assert!(!view.services[&svc].sorry_active);
        let applied = apply(&specs, &view, |_| None, |_| false);
        let back: Vec<String> = applied[0]
            .reals
            .iter()
            .map(|r| r.addr.to_string())
            .collect();
        assert_eq!(back, ["10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.15"]);
        assert_eq!(lines(&out, 3), ["quorum up", "quorum down", "quorum up"]);
    }

    #[tokio::test(start_paused = true)]
    async fn notify_scripts_get_their_arguments_and_a_slow_one_delays_nothing() {
        let dir = scratch("notify");
        let out = dir.join("out");
        let slow = script(&dir, "slow.sh", 2, &out);
        let fakes = Fakes::default();
        fakes.get("10.0.0.11", 0).push([up(), down("refused")]);
        fakes
            .get("10.0.0.12", 0)
            .push([up(), up(), down("refused"), up()]);
        let extra = |addr: &str| {
            format!("    notify_down \"{slow} down {addr} 'two words'\"\n    notify_up \"{slow} up {addr}\"\n")
        };
        let check = "      retry 0\n      warmup 0\n";
        let config = parse(&vs(&format!(
            "  delay_loop 10\n{}{}",
            tcp_real("10.0.0.11", &extra("10.0.0.11"), check),
            tcp_real("10.0.0.12", &extra("10.0.0.12"), check),
        )));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let mut rx = engine.start();
        let real_start = std::time::Instant::now();
        until(&mut rx, |v| !v.reals[&rid("10.0.0.11")].up).await;
        until(&mut rx, |v| !v.reals[&rid("10.0.0.12")].up).await;
        until(&mut rx, |v| v.reals[&rid("10.0.0.12")].up).await;
        // Three state changes while the first 2-second script still runs.
        assert!(real_start.elapsed() < Duration::from_millis(1500));
        let mut got = lines(&out, 3);
        got.sort();
        assert_eq!(
            got,
            [
                "down 10.0.0.11 two words",
                "down 10.0.0.12 two words",
                "up 10.0.0.12"
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn scripts_run_as_the_script_user() {
        let dir = scratch("user");
        let out = dir.join("out");
        let path = dir.join("id.sh");
        std::fs::write(&path, format!("#!/bin/sh\nid -u >> {}\n", out.display())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let fakes = Fakes::default();
        fakes.get("10.0.0.11", 0).push([down("refused")]);
        let extra = format!("    notify_down {}\n", path.display());
        let text = format!(
            "global_defs {{\n  script_user nobody\n}}\n{}",
            vs(&format!(
                "  delay_loop 10\n{}",
                tcp_real("10.0.0.11", &extra, "      warmup 0\n")
            ))
        );
        let mut engine = Engine::new(&parse(&text), fakes.factory()).unwrap();
        let mut rx = engine.start();
        until(&mut rx, |v| !v.reals[&rid("10.0.0.11")].up).await;
        assert_eq!(lines(&out, 1), ["65534"]);
    }

    #[tokio::test(start_paused = true)]
    async fn alpha_first_failure_runs_notify_down() {
        // ipwrapper.c: an alpha checker's first result is announced even
        // though the real was already down.
        let dir = scratch("alpha");
        let out = dir.join("out");
        let notify = script(&dir, "n.sh", 0, &out);
        let fakes = Fakes::default();
        fakes.get("10.0.0.11", 0).push([down("refused")]);
        let extra = format!("    alpha\n    notify_down \"{notify} down\"\n");
        let config = parse(&vs(&format!(
            "  delay_loop 10\n{}",
            tcp_real("10.0.0.11", &extra, "      warmup 0\n")
        )));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let mut rx = engine.start();
        until(&mut rx, |v| {
            v.reals[&rid("10.0.0.11")].reason.contains("refused")
        })
        .await;
        assert_eq!(lines(&out, 1), ["down"]);
    }

    #[tokio::test(start_paused = true)]
    async fn reload_keeps_states_and_phases() {
        let dir = scratch("reload");
        let out = dir.join("out");
        let notify = script(&dir, "n.sh", 0, &out);
        let fakes = Fakes::default();
        let check = "      warmup 0\n";
        let gone = format!("    notify_down \"{notify} gone 10.0.0.13\"\n");
        let first = parse(&vs(&format!(
            "  delay_loop 10\n  alpha\n{}{}",
            tcp_real("10.0.0.11", "", check),
            tcp_real("10.0.0.13", &gone, check)
        )));
        let mut engine = Engine::new(&first, fakes.factory()).unwrap();
        let mut rx = engine.start();
        let id = rid("10.0.0.11");
        until(&mut rx, |v| {
            v.reals[&id].up && v.reals[&rid("10.0.0.13")].up
        })
        .await;
        tokio::time::sleep(Duration::from_secs(4)).await;
        let f = fakes.get("10.0.0.11", 0);
        let last = *f.calls().last().unwrap();

        // Same real (alpha, so a fresh start would be down), one real gone,
        // one new.
        let second = parse(&vs(&format!(
            "  delay_loop 10\n  alpha\n{}{}",
            tcp_real("10.0.0.11", "", check),
            tcp_real("10.0.0.12", "", check)
        )));
        engine.reconfigure(&second, fakes.factory()).await.unwrap();
        let view = rx.borrow_and_update().clone();
        assert!(view.reals[&id].up, "no flap: up without a new check");
        assert!(
            !view.reals[&rid("10.0.0.12")].up,
            "a new alpha real starts down"
        );
        assert!(!view.reals.contains_key(&rid("10.0.0.13")));
        assert_eq!(lines(&out, 1), ["gone 10.0.0.13"]);

        // The next probe keeps the old phase: a delay_loop after the last.
        let before = f.calls().len();
        tokio::time::sleep(Duration::from_secs(7)).await;
        let calls = f.calls();
        assert_eq!(calls.len(), before + 1);
        assert_eq!(secs(calls[before] - last), 10.0);
        assert!(rx.borrow().reals[&id].up);
        engine.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_with_omega_runs_the_down_scripts_of_live_reals() {
        let dir = scratch("omega");
        let out = dir.join("out");
        let notify = script(&dir, "n.sh", 0, &out);
        let fakes = Fakes::default();
        fakes.get("10.0.0.12", 0).push([down("refused")]);
        let extra = |a: &str| format!("    notify_down \"{notify} down {a}\"\n");
        let config = parse(&vs(&format!(
            "  delay_loop 10\n  omega\n  quorum_down \"{notify} quorum down\"\n{}{}",
            tcp_real("10.0.0.11", &extra("10.0.0.11"), "      warmup 0\n"),
            tcp_real("10.0.0.12", &extra("10.0.0.12"), "      warmup 0\n")
        )));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let mut rx = engine.start();
        until(&mut rx, |v| !v.reals[&rid("10.0.0.12")].up).await;
        assert_eq!(lines(&out, 1), ["down 10.0.0.12"]);
        engine.shutdown().await;
        // Shutdown waited for them (they run side by side, as keepalived's).
        let text = std::fs::read_to_string(&out).unwrap();
        let mut got: Vec<&str> = text.lines().collect();
        got.sort();
        assert_eq!(got, ["down 10.0.0.11", "down 10.0.0.12", "quorum down"]);
    }

    /// The first-probe times of `n` reals, in ms since start, once all ran.
    async fn first_fires(n: usize, check: &str, delay_loop: u64) -> (Vec<u64>, Fakes) {
        let fakes = Fakes::default();
        let addr = |i: usize| format!("10.{}.{}.{}", i / 62_500, (i / 250) % 250, i % 250 + 1);
        let reals: String = (0..n).map(|i| tcp_real(&addr(i), "", check)).collect();
        let config = parse(&vs(&format!("  delay_loop {delay_loop}\n{reals}")));
        let mut engine = Engine::new(&config, fakes.factory()).unwrap();
        let start = Instant::now();
        engine.start();
        tokio::time::sleep(Duration::from_secs(2 * delay_loop + 1)).await;
        let firsts = (0..n)
            .map(|i| {
                let calls = fakes.get(&addr(i), 0).calls();
                assert!(calls.len() >= 2);
                // Each checker keeps its phase.
                assert_eq!(calls[1] - calls[0], Duration::from_secs(delay_loop));
                (calls[0] - start).as_millis() as u64
            })
            .collect();
        engine.shutdown().await;
        (firsts, fakes)
    }

    fn busiest_millisecond(firsts: &[u64]) -> (usize, usize) {
        let mut histogram: HashMap<u64, usize> = HashMap::new();
        for t in firsts {
            *histogram.entry(*t).or_default() += 1;
        }
        (histogram.values().copied().max().unwrap(), histogram.len())
    }

    #[tokio::test(start_paused = true)]
    async fn ten_thousand_checkers_do_not_fire_together() {
        // Default warmup (the delay_loop): spread over a whole minute.
        let (firsts, _) = first_fires(10_000, "", 60).await;
        let (busiest, distinct) = busiest_millisecond(&firsts);
        assert!(firsts.iter().all(|&t| t <= 60_000));
        assert!(busiest <= 8, "{busiest} checkers in one millisecond");
        assert!(distinct > 8_000, "{distinct}");

        // warmup 0: still spread over the jitter window (1 s).
        let (firsts, _) = first_fires(10_000, "      warmup 0\n", 60).await;
        let (busiest, distinct) = busiest_millisecond(&firsts);
        // (tokio timers round up to the millisecond)
        assert!(firsts.iter().all(|&t| t <= 1_000));
        assert!(busiest <= 40, "{busiest} checkers in one millisecond");
        assert!(distinct > 950, "{distinct}");
    }
}
