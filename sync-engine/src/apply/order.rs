//! The itemize lines of a run in rsync's order, whatever order the parallel work finishes in.
//!
//! Each directory the run works on is a node: its own line (slot 0), then the lines of its
//! direct entries (slots 1 on, as its [`crate::plan::DirPlan`] numbers them), then its
//! subdirectories' nodes in name order. Every slot is completed once, with a line or without
//! (an action that failed or prints nothing), and a node is *closed* once its plan is known
//! (how many slots, which subdirectories). Lines leave in pre-order as soon as everything before
//! them is complete; a node is freed once it and its subtree have left. Lines wait only behind
//! work still in flight, so memory follows the directories in flight, not the tree.

use std::sync::Mutex;

use crate::listing::Kind;
use crate::plan::Op;
use crate::report::{Item, Observer};

/// An itemize line waiting for its turn.
pub(crate) struct Line {
    pub field: [u8; 11],
    pub op: Op,
    pub kind: Kind,
    pub path: Vec<u8>,
    pub link: Option<Vec<u8>>,
    pub bytes: u64,
}

impl Line {
    fn item(&self) -> Item<'_> {
        Item {
            field: self.field,
            op: self.op,
            kind: self.kind,
            path: &self.path,
            link: self.link.as_deref(),
            bytes: self.bytes,
        }
    }
}

/// A directory's place in the output.
pub(crate) type NodeId = usize;

#[derive(Default)]
struct Node {
    /// Slot 0 and the entries' slots, once the node is closed.
    slots: Vec<Option<Option<Line>>>,
    /// Slot 0 may be completed before the node is closed (by the creation of the directory in
    /// its parent).
    first: Option<Option<Line>>,
    closed: bool,
    children: Vec<NodeId>,
    /// Lines of this node already passed on (the cursor's progress inside it).
    sent: usize,
    /// Children already passed on.
    next_child: usize,
}

#[derive(Default)]
struct Tree {
    nodes: Vec<Option<Node>>,
    free: Vec<NodeId>,
    /// The path of open nodes from the root to the node whose lines go next.
    cursor: Vec<NodeId>,
    /// Nodes that come after the root's subtree (the phases after the walk), in order.
    tail: std::collections::VecDeque<NodeId>,
}

impl Tree {
    fn alloc(&mut self) -> NodeId {
        let n = Some(Node::default());
        match self.free.pop() {
            Some(id) => {
                self.nodes[id] = n;
                id
            }
            None => {
                self.nodes.push(n);
                self.nodes.len() - 1
            }
        }
    }

    fn node(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(id).and_then(Option::as_mut)
    }

    /// Passes on every line now in turn.
    fn advance(&mut self, obs: &dyn Observer) {
        loop {
            if self.cursor.is_empty() {
                match self.tail.pop_front() {
                    Some(t) => self.cursor.push(t),
                    None => return,
                }
            }
            let Some(&id) = self.cursor.last() else {
                return;
            };
            let Some(n) = self.node(id) else {
                self.cursor.pop();
                continue;
            };
            if !n.closed {
                return;
            }
            if n.sent == 0
                && let Some(first) = n.first.take()
            {
                n.slots[0] = Some(first);
            }
            while n.sent < n.slots.len() {
                match n.slots[n.sent].take() {
                    Some(line) => {
                        if let Some(l) = line {
                            obs.item(&l.item());
                        }
                        n.sent += 1;
                    }
                    None => return,
                }
            }
            if n.next_child < n.children.len() {
                let c = n.children[n.next_child];
                n.next_child += 1;
                self.cursor.push(c);
                continue;
            }
            self.cursor.pop();
            self.nodes[id] = None;
            self.free.push(id);
        }
    }
}

/// See the module docs. Inactive (nothing kept) when the observer wants no items.
pub(crate) struct Order {
    active: bool,
    tree: Mutex<Tree>,
}

impl Order {
    pub fn new(active: bool) -> Order {
        Order {
            active,
            tree: Mutex::new(Tree::default()),
        }
    }

    fn tree(&self) -> std::sync::MutexGuard<'_, Tree> {
        self.tree.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The node of the root directory.
    pub fn root(&self) -> NodeId {
        if !self.active {
            return 0;
        }
        let mut t = self.tree();
        let id = t.alloc();
        t.cursor.push(id);
        id
    }

    /// A node with `slots` slots that comes after everything before it (the hard links made
    /// once the walk is done).
    pub fn extra(&self, slots: u32) -> NodeId {
        if !self.active {
            return 0;
        }
        let mut t = self.tree();
        let id = t.alloc();
        if let Some(n) = t.node(id) {
            n.slots = (0..slots.max(1)).map(|_| None).collect();
            n.closed = true;
        }
        t.tail.push_back(id);
        id
    }

    /// Closes `node`: `slots` slots (slot 0 included) and one new node per subdirectory, in
    /// name order (returned).
    pub fn close(
        &self,
        node: NodeId,
        slots: u32,
        children: usize,
        obs: &dyn Observer,
    ) -> Vec<NodeId> {
        if !self.active {
            return vec![0; children];
        }
        let mut t = self.tree();
        let kids: Vec<NodeId> = (0..children).map(|_| t.alloc()).collect();
        if let Some(n) = t.node(node) {
            n.slots = (0..slots.max(1)).map(|_| None).collect();
            n.children = kids.clone();
            n.closed = true;
        }
        t.advance(obs);
        kids
    }

    /// Completes slot `slot` of `node` with `line` (or none).
    pub fn done(&self, node: NodeId, slot: u32, line: Option<Line>, obs: &dyn Observer) {
        if !self.active {
            return;
        }
        let mut t = self.tree();
        let Some(n) = t.node(node) else { return };
        if slot == 0 && !n.closed {
            n.first = Some(line);
        } else if let Some(s) = n.slots.get_mut(slot as usize) {
            *s = Some(line);
        }
        t.advance(obs);
    }

    /// Completes every slot of `node` and its subtree that is still open, with no line: a
    /// directory that could not be entered, or a run that was cancelled.
    pub fn abandon(&self, node: NodeId, obs: &dyn Observer) {
        if !self.active {
            return;
        }
        let mut t = self.tree();
        let mut todo = vec![node];
        while let Some(id) = todo.pop() {
            let Some(n) = t.node(id) else { continue };
            if !n.closed {
                n.slots = vec![n.first.take()];
                n.closed = true;
            }
            for s in n.slots.iter_mut().filter(|s| s.is_none()) {
                *s = Some(None);
            }
            todo.extend(n.children.iter().copied());
        }
        t.advance(obs);
    }
}
