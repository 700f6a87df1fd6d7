//! The compiler of ss's filter expressions ([`Expr`]): an expression, for
//! a dump of one family in some states, as a tree of the tests the kernel
//! can make ([`Node`]), with constants folded; `emit.rs` lays the tree out
//! as ops the way ss's `ssfilter_bytecompile()` does (a test falls through
//! when true and jumps when false; NOT, AND and OR by where the jumps go).
//!
//! The kernel cannot test a socket's state: a `state` predicate is true or
//! false for the whole dump when the dump's state mask lies inside its
//! states or outside them, and otherwise unknown. So is a `dev` or a
//! `cgroup` not looked up yet. An unknown predicate makes the program an
//! approximation from above (the kernel sends every socket that can match,
//! and some that do not): it is taken as true where that lets more
//! through, false under a NOT. [`lower`] says whether it met one.

use super::{Side, Test, host};
use crate::filter::expr::{self, Expr, PortOp};
use crate::filter::{PortSpec, Prefix};
use crate::model::Family;

/// A test tree. `And` and `Or` have two or more children once simplified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Node {
    True,
    False,
    Test(Test),
    Not(Box<Node>),
    And(Vec<Node>),
    Or(Vec<Node>),
}

/// The tree of `expr` for dumps of `family` in the states `states`, and
/// whether it is exact (no predicate was unknown).
pub(super) fn lower(expr: &Expr, family: Family, states: u32) -> (Node, bool) {
    let mut exact = true;
    let node = Lowering {
        family,
        states,
        exact: &mut exact,
    }
    .node(expr, true);
    (node, exact)
}

struct Lowering<'a> {
    family: Family,
    states: u32,
    exact: &'a mut bool,
}

impl Lowering<'_> {
    /// `expr` as a tree; an unknown predicate is `upper` (true when
    /// approximating from above, false from below, as under a NOT).
    fn node(&mut self, expr: &Expr, upper: bool) -> Node {
        let unknown = |exact: &mut bool| {
            *exact = false;
            if upper { Node::True } else { Node::False }
        };
        match expr {
            Expr::And(list) => and(list.iter().map(|e| self.node(e, upper)).collect()),
            Expr::Or(list) => or(list.iter().map(|e| self.node(e, upper)).collect()),
            Expr::Not(e) => not(self.node(e, !upper)),
            Expr::State(mask) | Expr::Exclude(mask) => {
                let inside = match expr {
                    Expr::State(_) => *mask,
                    _ => !*mask,
                };
                if self.states & !inside == 0 {
                    Node::True
                } else if self.states & inside == 0 {
                    Node::False
                } else {
                    unknown(self.exact)
                }
            }
            Expr::Port { side, op, port } => port_node(side_of(*side), *op, *port),
            Expr::Host { side, prefix, port } => {
                let side = side_of(*side);
                and(vec![
                    prefix.map_or(Node::True, |p| self.prefix(side, &p)),
                    port.map_or(Node::True, |p| port_node(side, PortOp::Eq, p)),
                ])
            }
            Expr::Autobound(range) => and(vec![
                Node::Test(Test::Auto),
                match range {
                    Some(r) => port_node(Side::Local, PortOp::Eq, *r),
                    None => unknown(self.exact),
                },
            ]),
            Expr::Dev(d) => match d.index {
                Some(i) => Node::Test(Test::Dev(i)),
                None => unknown(self.exact),
            },
            Expr::Mark { mark, mask } => Node::Test(Test::Mark(*mark, *mask)),
            Expr::Cgroup(c) => match c.id {
                Some(id) => Node::Test(Test::Cgroup(id)),
                None => unknown(self.exact),
            },
        }
    }

    /// The address on `side` is inside `prefix`: [`host`]'s alternatives,
    /// which follow [`Prefix::contains`].
    fn prefix(&self, side: Side, prefix: &Prefix) -> Node {
        or(host(side, prefix, self.family)
            .into_iter()
            .map(|conjunction| {
                and(conjunction
                    .into_iter()
                    .map(|l| {
                        let test = Node::Test(l.test);
                        if l.negated { not(test) } else { test }
                    })
                    .collect())
            })
            .collect())
    }
}

fn side_of(side: expr::Side) -> Side {
    match side {
        expr::Side::Local => Side::Local,
        expr::Side::Remote => Side::Remote,
    }
}

/// `port OP spec`, as [`PortOp::holds`] has it. Equality is a host
/// condition with the port and no address (ss's way, which every kernel
/// knows); bounds that every port meets are left out.
fn port_node(side: Side, op: PortOp, spec: PortSpec) -> Node {
    let ge = |p: u16| {
        if p == 0 {
            Node::True
        } else {
            Node::Test(Test::PortGe(side, p))
        }
    };
    let le = |p: u16| {
        if p == u16::MAX {
            Node::True
        } else {
            Node::Test(Test::PortLe(side, p))
        }
    };
    let inside = || {
        if spec.lo == spec.hi {
            Node::Test(Test::HostPort(side, spec.lo))
        } else {
            and(vec![ge(spec.lo), le(spec.hi)])
        }
    };
    match op {
        PortOp::Eq => inside(),
        PortOp::Ne => not(inside()),
        PortOp::Lt => not(ge(spec.lo)),
        PortOp::Le => le(spec.hi),
        PortOp::Gt => not(le(spec.hi)),
        PortOp::Ge => ge(spec.lo),
    }
}

/// AND, folded: true operands dropped, a false one wins, nested ANDs
/// flattened.
fn and(nodes: Vec<Node>) -> Node {
    let mut out = Vec::new();
    for n in nodes {
        match n {
            Node::True => {}
            Node::False => return Node::False,
            Node::And(inner) => out.extend(inner),
            n => out.push(n),
        }
    }
    match out.len() {
        0 => Node::True,
        1 => out.pop().unwrap_or(Node::True),
        _ => Node::And(out),
    }
}

/// OR, folded likewise.
fn or(nodes: Vec<Node>) -> Node {
    let mut out = Vec::new();
    for n in nodes {
        match n {
            Node::False => {}
            Node::True => return Node::True,
            Node::Or(inner) => out.extend(inner),
            n => out.push(n),
        }
    }
    match out.len() {
        0 => Node::False,
        1 => out.pop().unwrap_or(Node::False),
        _ => Node::Or(out),
    }
}

fn not(node: Node) -> Node {
    match node {
        Node::True => Node::False,
        Node::False => Node::True,
        Node::Not(inner) => *inner,
        n => Node::Not(Box::new(n)),
    }
}

#[cfg(test)]
mod tests {
    //! Expressions compiled and run on the kernel model must accept the
    //! sockets `Expr::eval_with` does: exactly when the program says it is
    //! exact, at least those otherwise.

    use super::super::kernel::{Entry, SOCK_BINDPORT_LOCK, audit, entry, run};
    use super::super::tests::{concat, op, sock, sockets};
    use super::super::{
        BC_AUTO, BC_DEV_COND, BC_JMP, BC_S_COND, BC_S_GE, Program, compile_expr, compile_expr_in,
    };
    use super::*;
    use crate::filter::expr::{Cgroup, Device, Lookup, parse};
    use crate::model::{Socket, State};

    /// What the kernel knows of a socket and a `Socket` does not.
    #[derive(Debug, Clone, Copy)]
    struct Facts {
        ifindex: u32,
        userlocks: u16,
        mark: u32,
        cgroup_id: u64,
    }

    impl Facts {
        fn entry(&self, s: &Socket) -> Entry {
            Entry {
                ifindex: self.ifindex,
                userlocks: self.userlocks,
                mark: self.mark,
                cgroup_id: self.cgroup_id,
                ..entry(s)
            }
        }

        /// `Expr::eval_with`'s answers for the kernel-only predicates.
        fn answer(&self, e: &Expr) -> Option<bool> {
            match e {
                Expr::Autobound(_) => Some(self.userlocks & SOCK_BINDPORT_LOCK == 0),
                Expr::Dev(d) => d.index.map(|i| i == self.ifindex),
                Expr::Mark { mark, mask } => Some(self.mark & mask == *mark),
                Expr::Cgroup(c) => c.id.map(|id| id == self.cgroup_id),
                _ => None,
            }
        }
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    const PORTS: &[u16] = &[0, 1, 22, 53, 80, 443, 4000, 4002, 40000, 65535];

    const PREFIXES: &[&str] = &[
        "0.0.0.0/0",
        "0.0.0.0",
        "10.0.0.0/8",
        "127.0.0.0/8",
        "127.0.0.1",
        "192.168.1.0/24",
        "::/0",
        "::",
        "::/64",
        "::1",
        "fe80::/10",
        "2001:db8::/32",
        "::ffff:0:0/96",
        "::ffff:127.0.0.1",
        "::fffe:0:0/95",
    ];

    fn predicate(rng: &mut Rng) -> Expr {
        let side = [expr::Side::Local, expr::Side::Remote][rng.below(2)];
        let ops = [
            PortOp::Eq,
            PortOp::Ne,
            PortOp::Lt,
            PortOp::Le,
            PortOp::Gt,
            PortOp::Ge,
        ];
        let port = |rng: &mut Rng| {
            let p = PORTS[rng.below(PORTS.len())];
            PortSpec { lo: p, hi: p }
        };
        let range = |rng: &mut Rng| {
            let (a, b) = (PORTS[rng.below(PORTS.len())], PORTS[rng.below(PORTS.len())]);
            PortSpec {
                lo: a.min(b),
                hi: a.max(b),
            }
        };
        let states: Vec<u32> = State::ALL.iter().map(|s| s.bit()).collect();
        match rng.below(11) {
            0 | 1 => Expr::Port {
                side,
                op: ops[rng.below(ops.len())],
                port: port(rng),
            },
            2 => Expr::Port {
                side,
                op: [PortOp::Eq, PortOp::Ne][rng.below(2)],
                port: range(rng),
            },
            3 | 4 => Expr::Host {
                side,
                prefix: (rng.below(4) != 0)
                    .then(|| PREFIXES[rng.below(PREFIXES.len())].parse().unwrap()),
                port: match rng.below(3) {
                    0 => None,
                    1 => Some(port(rng)),
                    _ => Some(range(rng)),
                },
            },
            5 => Expr::State(states[rng.below(states.len())] | states[rng.below(states.len())]),
            6 => Expr::Exclude(states[rng.below(states.len())]),
            7 => Expr::Autobound(
                [
                    None,
                    Some(PortSpec {
                        lo: 32768,
                        hi: 60999,
                    }),
                    Some(PortSpec { lo: 0, hi: 4000 }),
                ][rng.below(3)],
            ),
            8 => Expr::Dev(Device {
                name: "x".into(),
                // now and then one not looked up: unknown to the kernel
                index: [None, Some(1), Some(2), Some(2)][rng.below(4)],
            }),
            9 => Expr::Mark {
                mark: [0, 0x10, 0x11][rng.below(3)],
                mask: [u32::MAX, 0xf0][rng.below(2)],
            },
            _ => Expr::Cgroup(Cgroup {
                path: "/x".into(),
                id: [None, Some(1), Some(7), Some(1 << 40)][rng.below(4)],
            }),
        }
    }

    fn random_expr(rng: &mut Rng, depth: usize) -> Expr {
        if depth == 0 || rng.below(3) == 0 {
            return predicate(rng);
        }
        match rng.below(3) {
            0 => Expr::Not(Box::new(random_expr(rng, depth - 1))),
            kind => {
                let list = (0..2 + rng.below(3))
                    .map(|_| random_expr(rng, depth - 1))
                    .collect();
                if kind == 1 {
                    Expr::And(list)
                } else {
                    Expr::Or(list)
                }
            }
        }
    }

    /// The synthetic sockets in several states, each with facts of its own.
    fn population(rng: &mut Rng) -> Vec<(Socket, Facts)> {
        let mut out = Vec::new();
        for s in sockets() {
            for _ in 0..3 {
                let mut s = s.clone();
                s.state = State::ALL[rng.below(State::ALL.len())];
                let facts = Facts {
                    ifindex: [0, 1, 2][rng.below(3)],
                    userlocks: [0, SOCK_BINDPORT_LOCK, 1 | SOCK_BINDPORT_LOCK][rng.below(3)],
                    mark: [0, 0x10, 0x11, 0x1f, 0x20][rng.below(5)],
                    cgroup_id: [1, 7, 1 << 40][rng.below(3)],
                };
                out.push((s, facts));
            }
        }
        out
    }

    /// Checks the program of `e` for dumps of each family in `states` on
    /// `population`; returns (sockets accepted, whether every program was
    /// exact).
    fn check(name: &str, e: &Expr, states: u32, population: &[(Socket, Facts)]) -> (usize, bool) {
        let mut accepted = 0;
        let mut all_exact = true;
        for family in [Family::Inet, Family::Inet6] {
            let Program { bytecode, exact } = compile_expr_in(e, family, states);
            all_exact &= exact;
            if let Some(bc) = &bytecode {
                audit(bc).unwrap_or_else(|err| panic!("{name} ({family:?}): audit: {err}: {bc:?}"));
            }
            let dumped = population
                .iter()
                .filter(|(s, _)| s.family == family && s.state.bit() & states != 0);
            for (s, facts) in dumped {
                let kernel = bytecode
                    .as_deref()
                    .is_none_or(|bc| run(bc, &facts.entry(s)));
                let reference = e.eval_with(s, &|x| facts.answer(x));
                let context = || {
                    format!(
                        "{name} in {states:#x} on {:?} -> {:?} {:?} {facts:?}: {bytecode:?}",
                        s.local, s.remote, s.state
                    )
                };
                if exact {
                    assert_eq!(Some(kernel), reference, "{}", context());
                } else if reference == Some(true) {
                    assert!(kernel, "rejects a match: {}", context());
                }
                accepted += usize::from(kernel);
            }
        }
        (accepted, all_exact)
    }

    #[test]
    fn agrees_with_eval_on_random_expressions() {
        let mut rng = Rng(0x55f1_17e2);
        let population = population(&mut rng);
        let all = State::ALL.iter().fold(0, |m, s| m | s.bit());
        let (mut accepted, mut exact, mut approximate) = (0, 0, 0);
        for i in 0..4000 {
            let e = random_expr(&mut rng, 4);
            let states = match rng.below(3) {
                0 => all,
                1 => e.states(),
                _ => e.states() & [State::Listen.bit(), all & !State::Listen.bit()][rng.below(2)],
            };
            let (n, was_exact) = check(
                &format!("random expression {i}: {e}"),
                &e,
                states,
                &population,
            );
            accepted += n;
            if was_exact {
                exact += 1;
            } else {
                approximate += 1;
            }
        }
        assert!(accepted > 50_000, "{accepted}");
        assert!(
            exact > 1500 && approximate > 300,
            "{exact} exact, {approximate} not"
        );
    }

    fn svc(name: &str) -> Option<u16> {
        (name == "ssh").then_some(22)
    }

    #[test]
    fn agrees_with_eval_on_ss_expressions() {
        let mut rng = Rng(0x0ddba11);
        let population = population(&mut rng);
        for text in [
            "sport = :22",
            "state established ( dport = :ssh or sport = :ssh )",
            "exclude listening sport gt :1024 and not dst 10.0.0.0/8",
            "dport = :0",
            "dst 0.0.0.0/0",
            "dst ::/0 or src ::ffff:0:0/96",
            "not src ::/64 and dport != :0",
            "src *:4000-4002 or dst [::1]:4002",
            "! ( sport >= :4000 && sport <= :4002 ) || dport < :1",
            "sport = :22 or sport = :80 and dport = :0",
            "autobound and not dev = 2",
            "fwmark = 0x10/0xf0 or cgroup = /x",
            "( state listening or sport = :22 )",
            "not ( state time-wait or exclude established,listening )",
            "dev 1 dev != 2",
        ] {
            let query = crate::filter::expr::parse_with(&[text.to_string()], &svc).unwrap();
            let mut e = query.expr.unwrap();
            e.resolve(&Lookup {
                if_index: &|_| None,
                cgroup_id: &|_| Some(7),
                port_range: PortSpec {
                    lo: 32768,
                    hi: 60999,
                },
            })
            .unwrap();
            let all = State::ALL.iter().fold(0, |m, s| m | s.bit());
            let states = query.states.unwrap_or(all) & e.states();
            check(text, &e, states, &population);
            check(text, &e, all, &population);
        }
    }

    fn expr(text: &str) -> Expr {
        parse(&[format!("( {text} )")]).unwrap().expr.unwrap()
    }

    /// `struct inet_diag_hostcond` of a port alone: AF_UNSPEC, /0, the port.
    fn port_cond(p: u16) -> Vec<u8> {
        let mut b = vec![0, 0, 0, 0];
        b.extend_from_slice(&i32::from(p).to_ne_bytes());
        b
    }

    /// The layouts ss's ssfilter_bytecompile() makes of the same filters.
    #[test]
    fn lays_out_like_ss() {
        // S_COND port 22, yes 12 to the end, no 16 past it
        let s22 = concat(&[op(BC_S_COND, 12, 16), port_cond(22)]);
        assert_eq!(
            compile_expr(&expr("sport = :22"), Family::Inet),
            Some(s22.clone())
        );
        // NOT: the test, then a jump past the end that its false skips
        let not22 = concat(&[op(BC_S_COND, 12, 16), port_cond(22), op(BC_JMP, 4, 8)]);
        assert_eq!(
            compile_expr(&expr("sport != :22"), Family::Inet),
            Some(not22)
        );
        // OR: a, a jump over b, b
        let or = concat(&[
            op(BC_S_COND, 12, 16),
            port_cond(22),
            op(BC_JMP, 4, 16),
            op(BC_S_COND, 12, 16),
            port_cond(80),
        ]);
        assert_eq!(
            compile_expr(&expr("sport = :22 or sport = :80"), Family::Inet6),
            Some(or)
        );
        // AND: a, b, a's false past the end of both
        let and = concat(&[
            op(BC_S_COND, 12, 28),
            port_cond(22),
            op(BC_AUTO, 4, 16),
            op(BC_DEV_COND, 8, 12),
            2u32.to_ne_bytes().to_vec(),
        ]);
        assert_eq!(
            compile_expr(&expr("sport = :22 autobound dev 2"), Family::Inet),
            Some(and)
        );
        // sport > :1024 is not sport <= 1024... as S_GE 1025 would also be
        let gt = compile_expr(&expr("sport >= :1024"), Family::Inet).unwrap();
        assert_eq!(gt, concat(&[op(BC_S_GE, 8, 12), op(0, 0, 1024)]));
    }

    #[test]
    fn states_the_dump_settles() {
        let all = State::ALL.iter().fold(0, |m, s| m | s.bit());
        let est = State::Established.bit();
        let e = expr("state established sport = :22");
        assert_eq!(e.states(), est);
        let only_port = compile_expr(&expr("sport = :22"), Family::Inet);
        // in a dump of established sockets, the state test is true
        let settled = compile_expr_in(&e, Family::Inet, est);
        assert!(settled.exact);
        assert_eq!(settled.bytecode, only_port);
        assert_eq!(compile_expr(&e, Family::Inet), only_port);
        // in a dump of all states, it cannot be told: from above, the port
        let open = compile_expr_in(&e, Family::Inet, all);
        assert!(!open.exact);
        assert_eq!(open.bytecode, only_port);
        // ... and from below under a NOT: false, so the NOT lets all through
        let negated = compile_expr_in(
            &expr("not ( state established sport = :22 )"),
            Family::Inet,
            all,
        );
        assert_eq!(
            negated,
            Program {
                bytecode: None,
                exact: false
            }
        );
        // where the dump settles it, the NOT is the port's
        let negated = compile_expr_in(
            &expr("not ( state established sport = :22 )"),
            Family::Inet,
            est,
        );
        assert_eq!(
            negated,
            Program {
                bytecode: compile_expr(&expr("sport != :22"), Family::Inet),
                exact: true
            }
        );
        let nothing = compile_expr_in(&expr("state established or sport = :22"), Family::Inet, all);
        assert_eq!(
            nothing,
            Program {
                bytecode: None,
                exact: false
            }
        );
        // outside the dump's states: nothing matches
        let none = compile_expr_in(&e, Family::Inet, State::Listen.bit());
        assert_eq!(none.bytecode, Some(op(BC_JMP, 4, 8)));
        assert!(none.exact);
        // everything matches: nothing to send, exactly
        let everything = compile_expr_in(&expr("sport >= :0"), Family::Inet, all);
        assert_eq!(
            everything,
            Program {
                bytecode: None,
                exact: true
            }
        );
    }

    #[test]
    fn unknown_devices_and_other_families() {
        let all = State::ALL.iter().fold(0, |m, s| m | s.bit());
        // a device not looked up: from above, true
        let dev = compile_expr_in(&expr("dev eth0 and sport = :22"), Family::Inet, all);
        assert!(!dev.exact);
        assert_eq!(
            dev.bytecode,
            compile_expr(&expr("sport = :22"), Family::Inet)
        );
        // an IPv6 prefix in an IPv4 dump never matches
        let v6 = compile_expr_in(&expr("src fe80::/10"), Family::Inet, all);
        assert_eq!(v6.bytecode, Some(op(BC_JMP, 4, 8)));
        assert!(v6.exact);
        let not_v6 = compile_expr_in(&expr("not src fe80::/10"), Family::Inet, all);
        assert_eq!(
            not_v6,
            Program {
                bytecode: None,
                exact: true
            }
        );
        let listener = sock("0.0.0.0:22", None);
        assert!(expr("not src fe80::/10").matches(&listener));
    }

    #[test]
    fn too_long_for_an_attribute() {
        let ports: Vec<String> = (1..=6000).map(|p| format!("sport = :{p}")).collect();
        let e = parse(&[ports.join(" or ")]).unwrap().expr.unwrap();
        let program = compile_expr_in(&e, Family::Inet, e.states());
        assert_eq!(
            program,
            Program {
                bytecode: None,
                exact: false
            }
        );
        let ports: Vec<String> = (1..=3000).map(|p| format!("sport = :{p}")).collect();
        let e = parse(&[ports.join(" or ")]).unwrap().expr.unwrap();
        let bc = compile_expr(&e, Family::Inet).unwrap();
        audit(&bc).unwrap();
        assert!(run(&bc, &entry(&sock("1.1.1.1:2999", None))));
        assert!(!run(&bc, &entry(&sock("1.1.1.1:3001", None))));
    }
}
