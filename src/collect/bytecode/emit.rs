//! The emitter: the compilers' clauses and trees as `inet_diag_bc_op`
//! bytes. Owns the layout of a program (which op jumps where), the
//! [`Builder`] that lays ops out and resolves their `no` offsets once every
//! label is placed, and the encoding of each [`Test`] as an op and its
//! payload.

use std::net::IpAddr;

use super::tree::Node;
use super::{
    AF_INET, AF_INET6, BC_AUTO, BC_CGROUP_COND, BC_D_COND, BC_D_EQ, BC_D_GE, BC_D_LE, BC_DEV_COND,
    BC_JMP, BC_MARK_COND, BC_S_COND, BC_S_EQ, BC_S_GE, BC_S_LE, Disjunction, Side, Test,
};

/// A program that rejects every socket: one jump past the end.
pub(super) fn reject_all() -> Vec<u8> {
    let mut b = Builder::new();
    b.jump(b.reject);
    // a lone jump's `no` (8) always fits; the literal is that program
    b.finish().unwrap_or_else(|| vec![BC_JMP, 4, 8, 0])
}

/// The AND of `clauses`. For each clause, the alternatives are laid out one
/// after the other: a failing test jumps to the next alternative (from the
/// last one: reject), and an alternative whose tests all passed jumps over
/// the rest to the next clause. After the last clause comes the end: accept.
/// `None` if a jump does not fit the u16 of an op's `no`.
pub(super) fn emit(clauses: &[Disjunction]) -> Option<Vec<u8>> {
    let mut b = Builder::new();
    for alternatives in clauses {
        let done = b.label();
        for (i, conjunction) in alternatives.iter().enumerate() {
            let last = i + 1 == alternatives.len();
            let next = if last { b.reject } else { b.label() };
            for literal in conjunction {
                if literal.negated {
                    // true: on to the jump to `next`; false: past it
                    let skip = b.label();
                    b.test(literal.test, skip);
                    b.jump(next);
                    b.place(skip);
                } else {
                    b.test(literal.test, next);
                }
            }
            if !last {
                b.jump(done);
                b.place(next);
            }
        }
        b.place(done);
    }
    b.finish()
}

/// A tree of tests, laid out as ss's `ssfilter_bytecompile()` lays out its
/// filters: each part falls through when true and jumps when false; the
/// root's false is the reject past the end, its true the end. `None` if a
/// jump does not fit the u16 of an op's `no`.
pub(super) fn emit_tree(root: &Node) -> Option<Vec<u8>> {
    let mut b = Builder::new();
    let reject = b.reject;
    b.node(root, reject);
    b.finish()
}

/// A place in the program, known once placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label(usize);

/// Lays out ops and resolves their `no` offsets at the end.
struct Builder {
    code: Vec<u8>,
    /// Offsets of labels, once placed.
    labels: Vec<Option<usize>>,
    /// (offset of an op, the label its `no` jumps to).
    jumps: Vec<(usize, Label)>,
    /// 4 bytes past the end, where the kernel's run ends with `len == -4`.
    reject: Label,
}

impl Builder {
    fn new() -> Builder {
        let mut b = Builder {
            code: Vec::new(),
            labels: Vec::new(),
            jumps: Vec::new(),
            reject: Label(0),
        };
        b.reject = b.label();
        b
    }

    fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    fn place(&mut self, label: Label) {
        self.labels[label.0] = Some(self.code.len());
    }

    /// An op whose test, when false, jumps to `no`; `yes` is its own
    /// length: the audit walks the program along `yes` (`inet_diag_bc_audit`).
    fn op(&mut self, code: u8, payload: &[u8], no: Label) {
        let len = 4 + payload.len();
        debug_assert!(len.is_multiple_of(4) && len <= usize::from(u8::MAX));
        self.jumps.push((self.code.len(), no));
        self.code.extend_from_slice(&[code, len as u8, 0, 0]);
        self.code.extend_from_slice(payload);
    }

    /// The code of `node`: on to what follows when it is true, to `no`
    /// when it is false. The depth of the recursion is the tree's, which
    /// the parser bounds (`filter::expr::MAX_DEPTH`).
    fn node(&mut self, node: &Node, no: Label) {
        match node {
            Node::True => {}
            Node::False => self.jump(no),
            Node::Test(test) => self.test(*test, no),
            Node::And(all) => {
                for n in all {
                    self.node(n, no);
                }
            }
            Node::Or(any) => {
                // each but the last: false tries the next, true jumps over
                // the rest
                let done = self.label();
                for (i, n) in any.iter().enumerate() {
                    if i + 1 == any.len() {
                        self.node(n, no);
                    } else {
                        let next = self.label();
                        self.node(n, next);
                        self.jump(done);
                        self.place(next);
                    }
                }
                if any.is_empty() {
                    self.jump(no);
                }
                self.place(done);
            }
            Node::Not(inner) => {
                // the inner part's true runs into the jump to `no`; its
                // false skips that jump
                let skip = self.label();
                self.node(inner, skip);
                self.jump(no);
                self.place(skip);
            }
        }
    }

    /// `INET_DIAG_BC_JMP`: the kernel always takes its `no`; its `yes` (4)
    /// is for the audit's walk.
    fn jump(&mut self, to: Label) {
        self.op(BC_JMP, &[], to);
    }

    fn test(&mut self, test: Test, no: Label) {
        let port = |code: u8, port: u16| {
            // the port sits in the `no` of a second op (`op[1].no`), which
            // the audit skips (`valid_port_comparison`)
            let [a, b] = port.to_ne_bytes();
            (code, vec![0, 0, a, b])
        };
        let (code, payload) = match test {
            Test::PortEq(Side::Local, p) => port(BC_S_EQ, p),
            Test::PortEq(Side::Remote, p) => port(BC_D_EQ, p),
            Test::PortGe(Side::Local, p) => port(BC_S_GE, p),
            Test::PortGe(Side::Remote, p) => port(BC_D_GE, p),
            Test::PortLe(Side::Local, p) => port(BC_S_LE, p),
            Test::PortLe(Side::Remote, p) => port(BC_D_LE, p),
            Test::Host(side, addr, len) => (cond_code(side), hostcond(addr, len)),
            Test::HostPort(side, p) => {
                // AF_UNSPEC, prefix length 0, the port, no address
                let mut bytes = vec![0, 0, 0, 0];
                bytes.extend_from_slice(&i32::from(p).to_ne_bytes());
                (cond_code(side), bytes)
            }
            Test::Auto => (BC_AUTO, Vec::new()),
            Test::Dev(index) => (BC_DEV_COND, index.to_ne_bytes().to_vec()),
            Test::Mark(mark, mask) => {
                let mut bytes = mark.to_ne_bytes().to_vec();
                bytes.extend_from_slice(&mask.to_ne_bytes());
                (BC_MARK_COND, bytes)
            }
            Test::Cgroup(id) => (BC_CGROUP_COND, id.to_ne_bytes().to_vec()),
        };
        self.op(code, &payload, no);
    }

    /// The program, or `None` if a jump does not fit a u16.
    fn finish(mut self) -> Option<Vec<u8>> {
        let end = self.code.len();
        self.labels[self.reject.0] = Some(end + 4);
        for &(at, label) in &self.jumps {
            let no = u16::try_from(self.labels[label.0]? - at).ok()?;
            self.code[at + 2..at + 4].copy_from_slice(&no.to_ne_bytes());
        }
        Some(self.code)
    }
}

fn cond_code(side: Side) -> u8 {
    match side {
        Side::Local => BC_S_COND,
        Side::Remote => BC_D_COND,
    }
}

/// `struct inet_diag_hostcond { __u8 family; __u8 prefix_len; int port;
/// __be32 addr[0]; }`: 8 bytes (two of padding before `port`), then the
/// address; port -1 is any port.
fn hostcond(addr: IpAddr, len: u8) -> Vec<u8> {
    let family = match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    };
    let mut bytes = vec![family, len, 0, 0];
    bytes.extend_from_slice(&(-1i32).to_ne_bytes());
    match addr {
        IpAddr::V4(a) => bytes.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => bytes.extend_from_slice(&a.octets()),
    }
    bytes
}

#[cfg(test)]
mod tests {
    //! Byte layouts: what the emitter makes of small filters, op by op.

    use super::*;
    use crate::collect::bytecode::compile;
    use crate::collect::bytecode::tests::{check, concat, op, ports, prefixes, sock, sockets};
    use crate::filter::Filter;
    use crate::model::Family;

    /// `(code, yes, no)` of the op at `at`.
    fn op_at(bc: &[u8], at: usize) -> (u8, u8, u16) {
        (
            bc[at],
            bc[at + 1],
            u16::from_ne_bytes([bc[at + 2], bc[at + 3]]),
        )
    }

    #[test]
    fn single_port() {
        let f = Filter {
            sport: ports(&["22"]),
            ..Filter::default()
        };
        // S_EQ, yes to the end (8: accept), no to 8 + 4 (reject); the port
        // in the second op's `no`
        let want = concat(&[op(BC_S_EQ, 8, 12), op(0, 0, 22)]);
        assert_eq!(compile(&f, Family::Inet), Some(want.clone()));
        assert_eq!(compile(&f, Family::Inet6), Some(want));
    }

    #[test]
    fn port_range() {
        let f = Filter {
            dport: ports(&["1000-2000"]),
            ..Filter::default()
        };
        let want = concat(&[
            op(BC_D_GE, 8, 20), // 0: reject is 16 + 4
            op(0, 0, 1000),
            op(BC_D_LE, 8, 12), // 8: reject is 20 - 8
            op(0, 0, 2000),
        ]);
        assert_eq!(compile(&f, Family::Inet), Some(want));
        // open-ended ranges drop the bound every port meets
        let f = Filter {
            sport: ports(&["1024-65535"]),
            ..Filter::default()
        };
        let want = concat(&[op(BC_S_GE, 8, 12), op(0, 0, 1024)]);
        assert_eq!(compile(&f, Family::Inet), Some(want));
    }

    #[test]
    fn or_of_two_ports() {
        let f = Filter {
            sport: ports(&["22", "80"]),
            ..Filter::default()
        };
        let want = concat(&[
            op(BC_S_EQ, 8, 12), // 0: not 22, try 80 at 12
            op(0, 0, 22),
            op(BC_JMP, 4, 12),  // 8: was 22, on to the end at 20
            op(BC_S_EQ, 8, 12), // 12: not 80 either: reject at 24
            op(0, 0, 80),
        ]);
        assert_eq!(compile(&f, Family::Inet), Some(want));
    }

    #[test]
    fn sport_and_dst_prefix() {
        let f = Filter {
            sport: ports(&["22"]),
            dst: prefixes(&["10.0.0.0/8"]),
            ..Filter::default()
        };
        let mut hostcond = vec![AF_INET, 8, 0, 0];
        hostcond.extend_from_slice(&(-1i32).to_ne_bytes());
        hostcond.extend_from_slice(&[10, 0, 0, 0]);
        let want = concat(&[
            op(BC_S_EQ, 8, 28), // 0: reject is 24 + 4
            op(0, 0, 22),
            op(BC_D_COND, 16, 20), // 8: reject is 28 - 8
            hostcond,
        ]);
        assert_eq!(compile(&f, Family::Inet), Some(want.clone()));
        // the same AF_INET condition serves IPv6 dumps: the kernel matches
        // it against mapped addresses
        assert_eq!(compile(&f, Family::Inet6), Some(want));
    }

    #[test]
    fn ipv6_prefix() {
        let f = Filter {
            src: prefixes(&["2001:db8::/32"]),
            ..Filter::default()
        };
        let mut want = op(BC_S_COND, 28, 32);
        want.extend_from_slice(&[AF_INET6, 32, 0, 0]);
        want.extend_from_slice(&(-1i32).to_ne_bytes());
        want.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        want.extend_from_slice(&[0; 12]);
        assert_eq!(compile(&f, Family::Inet6), Some(want));
    }

    #[test]
    fn twenty_ports_jump_far() {
        let list: Vec<String> = (0..20).map(|i| (1000 + 7 * i).to_string()).collect();
        let list: Vec<&str> = list.iter().map(String::as_str).collect();
        let f = Filter {
            port: ports(&list),
            dst: prefixes(&["127.0.0.0/8", "::1"]),
            ..Filter::default()
        };
        let bc = compile(&f, Family::Inet6).unwrap();
        let (_, _, first_no) = op_at(&bc, 0);
        let longest = (0..bc.len())
            .step_by(4)
            .filter(|&at| [BC_JMP, BC_S_EQ, BC_D_EQ].contains(&bc[at]))
            .map(|at| op_at(&bc, at).2)
            .max()
            .unwrap();
        assert_eq!(first_no, 12);
        assert!(longest > 255, "a jump past what a u8 holds: {longest}");
        let mut extra = sockets();
        for p in [1000, 1007, 1133, 1134, 999] {
            extra.push(sock(&format!("127.0.0.1:{p}"), Some("127.0.0.1:50000")));
            extra.push(sock("127.0.0.1:50000", Some(&format!("127.0.0.1:{p}"))));
            extra.push(sock(&format!("[::1]:{p}"), Some("[::1]:50000")));
            extra.push(sock(
                &format!("[::ffff:127.0.0.1]:{p}"),
                Some("[::ffff:127.0.0.5]:50000"),
            ));
        }
        assert!(check("20 ports", &f, &extra) > 0);
    }
}
