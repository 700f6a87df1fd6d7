//! Colours, decided once: a palette is either all styles or all plain, and
//! the renderers ask it for a style by role, never for a colour.

use owo_colors::Style;

use crate::classify::direction::Direction;
use crate::model::State;

#[derive(Debug, Clone, Copy)]
pub struct Palette {
    enabled: bool,
}

impl Palette {
    pub fn new(enabled: bool) -> Palette {
        Palette { enabled }
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn pick(&self, style: Style) -> Style {
        if self.enabled { style } else { Style::new() }
    }

    pub fn header(&self) -> Style {
        self.pick(Style::new().bold())
    }

    pub fn state(&self, state: State) -> Style {
        self.pick(match state {
            State::Listen => Style::new().green(),
            State::Established => Style::new(),
            State::SynSent | State::SynRecv | State::NewSynRecv => Style::new().yellow(),
            _ => Style::new().dimmed(),
        })
    }

    pub fn direction(&self, direction: Direction) -> Style {
        self.pick(match direction {
            Direction::Listen => Style::new().green(),
            Direction::Inbound => Style::new().cyan(),
            Direction::Outbound => Style::new().magenta(),
            Direction::Unknown => Style::new().dimmed(),
        })
    }
}
