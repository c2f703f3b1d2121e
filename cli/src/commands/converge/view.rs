//! What a wait shows while it polls, on stderr: docker's slot lines for
//! one service, or one line per service for a stack (a bar redrawn in
//! place on a terminal, plain lines printed when they change otherwise).

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::verdict::{summary, Follow, Outcome};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// docker's `service create` lines: `overall progress: 1 out of 3
    /// tasks`, `1/3: running`, `verify: Service converged`.
    Slots,
    /// A line per service when it changes: `web: 2/3 running; task web.3
    /// starting`, `web: converged`.
    Lines,
    /// A line per service redrawn in place: `web  [=============>      ]
    /// 2/3 running  task web.3 starting`.
    Bars,
}

const BAR_WIDTH: usize = 20;

pub struct View {
    style: Style,
    quiet: bool,
    /// Lines: the last line said of each service.
    said: Vec<Option<String>>,
    /// Bars: the lines on the screen, and the last note of each service.
    drawn: Vec<String>,
    noted: Vec<Option<String>>,
    /// Slots: what docker's lines said last.
    last_overall: Option<(usize, usize)>,
    last_slots: BTreeMap<String, String>,
}

impl View {
    pub fn new(style: Style, quiet: bool) -> View {
        View {
            style,
            quiet,
            said: Vec::new(),
            drawn: Vec::new(),
            noted: Vec::new(),
            last_overall: None,
            last_slots: BTreeMap::new(),
        }
    }

    /// Shows what changed since the last call (and takes the notes).
    pub fn show(&mut self, follows: &mut [Follow], out: &mut dyn Write) -> io::Result<()> {
        if self.quiet {
            follows.iter_mut().for_each(|f| f.notes.clear());
            return Ok(());
        }
        match self.style {
            Style::Slots => {
                for follow in follows.iter_mut() {
                    self.slots(follow, out)?;
                }
                Ok(())
            }
            Style::Lines => self.lines(follows, out),
            Style::Bars => self.bars(follows, out),
        }
    }

    /// Leaves the terminal as it found it.
    pub fn finish(&mut self, out: &mut dyn Write) -> io::Result<()> {
        if self.style == Style::Bars && !self.drawn.is_empty() {
            // Line wrapping back on.
            write!(out, "\x1b[?7h")?;
            out.flush()?;
        }
        Ok(())
    }

    fn slots(&mut self, follow: &mut Follow, out: &mut dyn Write) -> io::Result<()> {
        for note in follow.notes.drain(..) {
            writeln!(out, "{note}")?;
        }
        let Some(p) = &follow.progress else {
            return Ok(());
        };
        let overall = (p.running + p.completed, p.desired);
        if self.last_overall != Some(overall) {
            if p.job {
                writeln!(
                    out,
                    "job progress: {} out of {} complete",
                    overall.0, overall.1
                )?;
            } else {
                writeln!(
                    out,
                    "overall progress: {} out of {} tasks",
                    overall.0, overall.1
                )?;
            }
            self.last_overall = Some(overall);
        }
        for (slot, state) in &p.slots {
            if self.last_slots.get(slot) != Some(state) {
                writeln!(out, "{slot}: {state}")?;
            }
        }
        self.last_slots = p.slots.clone();
        if follow.outcome == Outcome::Converged {
            if p.job {
                writeln!(out, "job complete")?;
            } else {
                writeln!(out, "verify: Service converged")?;
            }
        }
        Ok(())
    }

    fn lines(&mut self, follows: &mut [Follow], out: &mut dyn Write) -> io::Result<()> {
        self.said.resize(follows.len(), None);
        for (follow, said) in follows.iter_mut().zip(&mut self.said) {
            for note in follow.notes.drain(..) {
                writeln!(out, "{}: {note}", follow.name)?;
            }
            let Some(line) = plain_line(follow) else {
                continue;
            };
            if said.as_ref() != Some(&line) {
                writeln!(out, "{line}")?;
                *said = Some(line);
            }
        }
        Ok(())
    }

    fn bars(&mut self, follows: &mut [Follow], out: &mut dyn Write) -> io::Result<()> {
        self.noted.resize(follows.len(), None);
        for (follow, noted) in follows.iter_mut().zip(&mut self.noted) {
            if let Some(note) = follow.notes.drain(..).next_back() {
                *noted = Some(note);
            }
        }
        let width = follows.iter().map(|f| f.name.len()).max().unwrap_or(0);
        let lines: Vec<String> = follows
            .iter()
            .zip(&self.noted)
            .map(|(f, note)| bar_line(f, width, note.as_deref()))
            .collect();
        if lines == self.drawn {
            return Ok(());
        }
        if self.drawn.is_empty() {
            // No wrapping while drawing: a line longer than the terminal
            // is cut, so moving up by the number of lines stays right.
            write!(out, "\x1b[?7l")?;
        } else {
            write!(out, "\x1b[{}A", self.drawn.len())?;
        }
        for line in &lines {
            write!(out, "\r\x1b[2K{line}\n")?;
        }
        out.flush()?;
        self.drawn = lines;
        Ok(())
    }
}

/// The plain line of a service: `web: 2/3 running; task web.3 starting`,
/// `web: converged`; none before its first poll or once it failed (the
/// error says why).
fn plain_line(follow: &Follow) -> Option<String> {
    let p = follow.progress.as_ref()?;
    match &follow.outcome {
        Outcome::Waiting => Some(match &follow.detail {
            Some(detail) => format!("{}: {}; {detail}", follow.name, summary(p)),
            None => format!("{}: {}", follow.name, summary(p)),
        }),
        Outcome::Converged if p.job => Some(format!("{}: completed", follow.name)),
        Outcome::Converged => Some(format!("{}: converged", follow.name)),
        Outcome::Failed(_) => None,
    }
}

fn bar_line(follow: &Follow, width: usize, note: Option<&str>) -> String {
    let name = &follow.name;
    let Some(p) = &follow.progress else {
        return format!("{name:<width$}  [{}] waiting", " ".repeat(BAR_WIDTH));
    };
    let status = match &follow.outcome {
        Outcome::Waiting => follow.detail.as_deref().or(note).unwrap_or(""),
        Outcome::Converged if p.job => "completed",
        Outcome::Converged => "converged",
        Outcome::Failed(_) => "failed",
    };
    let bar = bar(
        p.running + p.completed,
        p.desired,
        follow.outcome == Outcome::Converged,
    );
    format!("{name:<width$}  [{bar}] {}  {status}", summary(p))
        .trim_end()
        .to_string()
}

/// `=====>    `: `done` of `desired`, full once converged.
fn bar(done: usize, desired: usize, converged: bool) -> String {
    let filled = if converged {
        BAR_WIDTH
    } else {
        (done * BAR_WIDTH)
            .checked_div(desired)
            .unwrap_or(0)
            .min(BAR_WIDTH)
    };
    if filled == BAR_WIDTH {
        return "=".repeat(BAR_WIDTH);
    }
    format!(
        "{}>{}",
        "=".repeat(filled),
        " ".repeat(BAR_WIDTH - filled - 1)
    )
}

#[cfg(test)]
mod tests {
    use super::super::progress::Progress;
    use super::super::verdict::Target;
    use super::*;

    fn follow(name: &str, running: usize, desired: usize, outcome: Outcome) -> Follow {
        let mut f = Follow::new(Target {
            id: format!("{name}-id"),
            watch_update: false,
            rollback: false,
            new_spec: true,
            verify: false,
        });
        f.name = name.into();
        f.progress = Some(Progress {
            desired,
            running,
            completed: 0,
            slots: (1..=desired)
                .map(|s| {
                    let state = if s <= running { "running" } else { "starting" };
                    (format!("{s}/{desired}"), state.to_string())
                })
                .collect(),
            converged: outcome == Outcome::Converged,
            job: false,
            waiting_on: (running < desired).then(|| format!("task {name}.{desired} starting")),
            given_up: None,
        });
        f.detail = f.progress.as_ref().unwrap().waiting_on.clone();
        f.outcome = outcome;
        f
    }

    fn shown(view: &mut View, follows: &mut [Follow]) -> String {
        let mut out = Vec::new();
        view.show(follows, &mut out).expect("show");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn plain_lines_are_said_only_when_they_change() {
        let mut view = View::new(Style::Lines, false);
        let mut follows = [
            follow("st_web", 2, 3, Outcome::Waiting),
            follow("st_db", 1, 1, Outcome::Converged),
        ];
        assert_eq!(
            shown(&mut view, &mut follows),
            "st_web: 2/3 running; task st_web.3 starting\nst_db: converged\n"
        );
        assert_eq!(shown(&mut view, &mut follows), "", "nothing changed");
        follows[0] = follow("st_web", 3, 3, Outcome::Converged);
        follows[0].notes.push("rollback: why".into());
        assert_eq!(
            shown(&mut view, &mut follows),
            "st_web: rollback: why\nst_web: converged\n"
        );
        // A failure is the error's to tell.
        follows[1].outcome = Outcome::Failed("service st_db: gone".into());
        assert_eq!(shown(&mut view, &mut follows), "");
    }

    #[test]
    fn bars_redraw_in_place_with_wrapping_off() {
        let mut view = View::new(Style::Bars, false);
        let mut follows = [
            follow("st_web", 2, 3, Outcome::Waiting),
            follow("st_db", 0, 1, Outcome::Waiting),
        ];
        let first = shown(&mut view, &mut follows);
        assert_eq!(
            first,
            "\x1b[?7l\
             \r\x1b[2Kst_web  [=============>      ] 2/3 running  task st_web.3 starting\n\
             \r\x1b[2Kst_db   [>                   ] 0/1 running  task st_db.1 starting\n"
        );
        assert_eq!(shown(&mut view, &mut follows), "", "nothing to redraw");
        follows[1] = follow("st_db", 1, 1, Outcome::Converged);
        let second = shown(&mut view, &mut follows);
        assert!(second.starts_with("\x1b[2A"), "{second:?}");
        assert!(
            second.ends_with("\r\x1b[2Kst_db   [====================] 1/1 running  converged\n"),
            "{second:?}"
        );
        let mut out = Vec::new();
        view.finish(&mut out).expect("finish");
        assert_eq!(out, b"\x1b[?7h");
    }

    #[test]
    fn docker_slot_lines_for_one_service() {
        let mut view = View::new(Style::Slots, false);
        let mut follows = [follow("web", 1, 2, Outcome::Waiting)];
        assert_eq!(
            shown(&mut view, &mut follows),
            "overall progress: 1 out of 2 tasks\n1/2: running\n2/2: starting\n"
        );
        follows[0] = follow("web", 2, 2, Outcome::Converged);
        assert_eq!(
            shown(&mut view, &mut follows),
            "overall progress: 2 out of 2 tasks\n2/2: running\nverify: Service converged\n"
        );
    }

    #[test]
    fn quiet_shows_nothing() {
        let mut view = View::new(Style::Bars, true);
        let mut follows = [follow("web", 1, 2, Outcome::Waiting)];
        assert_eq!(shown(&mut view, &mut follows), "");
        let mut out = Vec::new();
        view.finish(&mut out).expect("finish");
        assert!(out.is_empty());
    }

    #[test]
    fn the_bar_fills_with_progress() {
        assert_eq!(bar(0, 3, false), ">                   ");
        assert_eq!(bar(2, 3, false), "=============>      ");
        assert_eq!(bar(3, 3, false), "====================");
        assert_eq!(bar(0, 0, true), "====================");
        assert_eq!(bar(0, 0, false), ">                   ");
    }
}
