//! The order of a flow's steps: which steps each one needs, which of a
//! run's steps may run now, and the checks a deploy makes of `needs`.
//!
//! A step without `needs` needs the step before it, so a flow that names
//! no `needs` is the straight line it always was; `needs = []` starts a
//! step with the run, and `needs = ["a", "b"]` when both `a` and `b` are
//! done (completed or skipped). Steps whose needs are all done run at
//! once, each with its own retries and key.

use super::definition::FlowDef;

/// The needs of each step of a flow, by position, and what each step runs
/// after (its needs, their needs, and so on).
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    needs: Vec<Vec<usize>>,
    after: Vec<Vec<bool>>,
}

impl Graph {
    /// The graph of `def`. Names that are no step are left out (the deploy
    /// refused them; see [`problems`]).
    pub(crate) fn of(def: &FlowDef) -> Graph {
        let position = |id: &str| def.steps.iter().position(|s| s.id == id);
        let needs: Vec<Vec<usize>> = def
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| match &step.needs {
                Some(names) => names.iter().filter_map(|n| position(n)).collect(),
                None => i.checked_sub(1).into_iter().collect(),
            })
            .collect();
        let after = (0..needs.len())
            .map(|i| {
                let mut seen = vec![false; needs.len()];
                let mut stack = needs[i].clone();
                while let Some(j) = stack.pop() {
                    if !std::mem::replace(&mut seen[j], true) {
                        stack.extend(&needs[j]);
                    }
                }
                seen
            })
            .collect();
        Graph { needs, after }
    }

    /// Whether step `later` runs only after step `earlier` is done.
    pub(crate) fn runs_after(&self, later: usize, earlier: usize) -> bool {
        self.after
            .get(later)
            .and_then(|a| a.get(earlier))
            .copied()
            .unwrap_or(false)
    }

    /// The positions of the steps that may move now, given each step's
    /// status by position: unfinished (pending, running or waiting) with
    /// every need done.
    pub(crate) fn ready(&self, status: &[&str]) -> Vec<usize> {
        let done = |j: &usize| matches!(status.get(*j), Some(&("completed" | "skipped")));
        (0..status.len())
            .filter(|&i| matches!(status[i], "pending" | "running" | "waiting"))
            .filter(|&i| self.needs.get(i).is_some_and(|n| n.iter().all(done)))
            .collect()
    }
}

/// What is wrong with the `needs` of `def`, each naming the step: a name
/// that is no step, a step that needs itself or names a step twice, and
/// a cycle, spelled out.
pub(crate) fn problems(def: &FlowDef) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, step) in def.steps.iter().enumerate() {
        let at = format!("steps[{i}] (id `{}`)", step.id);
        let Some(names) = &step.needs else { continue };
        for (k, name) in names.iter().enumerate() {
            if name == &step.id {
                problems.push(format!("{at}: needs: a step cannot need itself"));
            } else if !def.steps.iter().any(|s| &s.id == name) {
                problems.push(format!("{at}: needs: no step has the id `{name}`"));
            } else if names[..k].contains(name) {
                problems.push(format!("{at}: needs: `{name}` is named twice"));
            }
        }
    }
    if let Some(cycle) = cycle(&Graph::of(def)) {
        let ids: Vec<&str> = cycle.iter().map(|&i| def.steps[i].id.as_str()).collect();
        problems.push(format!(
            "needs: the steps wait for each other in a circle, so none of them can start: {}",
            ids.join(" -> ")
        ));
    }
    problems
}

/// A cycle of the graph, as the positions along it (the first repeated at
/// the end), if there is one. A step that needs itself is not reported here.
fn cycle(graph: &Graph) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let n = graph.needs.len();
    let mut mark = vec![Mark::New; n];
    for start in 0..n {
        if mark[start] != Mark::New {
            continue;
        }
        // Depth first, with the path kept: an edge back to an open step
        // closes a cycle.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::Open;
        while let Some(&mut (node, ref mut next)) = path.last_mut() {
            let needs = &graph.needs[node];
            if let Some(&need) = needs.get(*next) {
                *next += 1;
                if need == node {
                    continue;
                }
                match mark[need] {
                    Mark::New => {
                        mark[need] = Mark::Open;
                        path.push((need, 0));
                    }
                    Mark::Open => {
                        let from = path.iter().position(|&(p, _)| p == need).unwrap_or(0);
                        let mut cycle: Vec<usize> = path[from..].iter().map(|&(p, _)| p).collect();
                        cycle.push(need);
                        // Read as "a needs b needs c needs a".
                        return Some(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                path.pop();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::parse;

    fn flow(steps: &str) -> FlowDef {
        parse(&format!("trigger = {{ type = \"manual\" }}\n{steps}")).unwrap()
    }

    #[test]
    fn without_needs_each_step_needs_the_one_before() {
        let def = flow(
            "[[steps]]\nid = \"a\"\nmap = \"1\"\n[[steps]]\nid = \"b\"\nmap = \"2\"\n[[steps]]\nid = \"c\"\nmap = \"3\"",
        );
        let g = Graph::of(&def);
        assert_eq!(g.ready(&["pending", "pending", "pending"]), [0]);
        assert_eq!(g.ready(&["skipped", "pending", "pending"]), [1]);
        assert!(g.runs_after(2, 0));
        assert!(!g.runs_after(0, 2));
        assert!(problems(&def).is_empty());
    }

    #[test]
    fn independent_steps_are_ready_together_and_a_join_waits_for_all() {
        let def = flow(
            "[[steps]]\nid = \"a\"\nmap = \"1\"\n\
             [[steps]]\nid = \"b\"\nmap = \"2\"\nneeds = [\"a\"]\n\
             [[steps]]\nid = \"c\"\nmap = \"3\"\nneeds = [\"a\"]\n\
             [[steps]]\nid = \"d\"\nmap = \"4\"\nneeds = [\"b\", \"c\"]",
        );
        let g = Graph::of(&def);
        assert_eq!(
            g.ready(&["completed", "pending", "pending", "pending"]),
            [1, 2]
        );
        assert_eq!(
            g.ready(&["completed", "completed", "running", "pending"]),
            [2]
        );
        assert_eq!(
            g.ready(&["completed", "completed", "skipped", "pending"]),
            [3]
        );
        assert!(g.runs_after(3, 0));
        assert!(!g.runs_after(2, 1));
    }

    #[test]
    fn bad_needs_are_named() {
        let def = flow(
            "[[steps]]\nid = \"a\"\nmap = \"1\"\nneeds = [\"c\", \"a\", \"zz\"]\n\
             [[steps]]\nid = \"b\"\nmap = \"2\"\nneeds = [\"a\", \"a\"]\n\
             [[steps]]\nid = \"c\"\nmap = \"3\"\nneeds = [\"b\"]",
        );
        let p = problems(&def);
        assert!(
            p.contains(&"steps[0] (id `a`): needs: a step cannot need itself".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"steps[0] (id `a`): needs: no step has the id `zz`".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"steps[1] (id `b`): needs: `a` is named twice".to_string()),
            "{p:?}"
        );
        assert!(
            p.contains(&"needs: the steps wait for each other in a circle, so none of them can start: a -> c -> b -> a".to_string()),
            "{p:?}"
        );
    }
}
