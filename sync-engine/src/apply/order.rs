//! The itemize lines of a run in rsync's order ([`crate::plan::Plan::slots`]), whatever order the
//! parallel work finishes in: each slot is completed once, with a line or without one (a failed
//! action, one that prints nothing), and lines are handed to the observer as soon as every
//! slot before them is complete. Lines wait only while an earlier slot is still being worked
//! on, so memory follows the work in flight, not the tree.

use std::collections::BTreeMap;
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

#[derive(Default)]
struct State {
    next: u32,
    waiting: BTreeMap<u32, Option<Line>>,
}

/// See the module docs. Inactive (nothing kept) when the observer wants no items.
pub(crate) struct Order {
    active: bool,
    state: Mutex<State>,
}

impl Order {
    pub fn new(active: bool) -> Order {
        Order {
            active,
            state: Mutex::new(State::default()),
        }
    }

    /// Completes `slot` with `line` (or none) and passes every line now in turn to `obs`.
    pub fn done(&self, slot: u32, line: Option<Line>, obs: &dyn Observer) {
        if !self.active {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if slot < st.next {
            return;
        }
        st.waiting.insert(slot, line);
        loop {
            let next = st.next;
            let Some(l) = st.waiting.remove(&next) else {
                break;
            };
            if let Some(l) = l {
                obs.item(&l.item());
            }
            st.next += 1;
        }
    }

    /// Passes the lines still waiting (behind slots that were never completed: a directory
    /// that could not be entered, a cancelled run) in their order.
    pub fn flush(&self, obs: &dyn Observer) {
        if !self.active {
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for (_, l) in std::mem::take(&mut st.waiting) {
            if let Some(l) = l {
                obs.item(&l.item());
            }
        }
    }
}
