//! Plans for the commands that place things in memory (`booti`, `load`,
//! `source`, `fdt` edits): pure functions from facts — headers, sizes, the
//! memory map, env values, what the target's memory checks say — to the
//! placements and the ordered list of writes, or the one-line reason they
//! refuse. Nothing here reads or writes the machine's memory: a refusal
//! leaves memory and claims untouched by construction, and the bin's short
//! executor performs an accepted plan.

use alloc::string::String;

pub mod booti;
pub mod fdt;
pub mod load;
pub mod net;

/// Why a command line was refused before any fact was gathered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// Wrong number or shape of arguments: the shell prints the usage.
    Usage,
    /// One argument is bad: the one-line reason.
    Bad(String),
}

impl From<ArgError> for shell::CmdError {
    fn from(e: ArgError) -> Self {
        match e {
            ArgError::Usage => Self::Usage,
            ArgError::Bad(s) => Self::Msg(s),
        }
    }
}
