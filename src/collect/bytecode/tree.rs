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
            Expr::Autobound => Node::Test(Test::Auto),
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
