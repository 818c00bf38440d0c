//! The sleep part: how waiting CPUs sleep — the pen's wake block (WFIT, or
//! WFI woken by the CPU's own timer through the GIC, else WFE) and the boot
//! CPU's idle between console bytes, set up once from the DT.

use crate::arch::{cpu, gic, timer};
use alloc::format;
use alloc::string::String;
use loader::dt::DtInfo;
use loader::wake::WakeConfig;

pub struct Sleep {
    config: WakeConfig,
    /// Why waiting CPUs cannot sleep on a timer interrupt, if they cannot.
    note: Option<String>,
}

impl Sleep {
    /// WFE only, until [`Sleep::init`].
    pub fn new() -> Self {
        Self {
            config: WakeConfig::wfe_only(),
            note: None,
        }
    }

    /// Plans how waiting CPUs sleep (wake period `period_us`) and sets up the boot CPU's own
    /// idle sleep and the GIC distributor the pen's timer wake-ups need; `uart` is the console
    /// whose receive interrupt also wakes the boot CPU.
    pub fn init(
        &mut self,
        dt: Option<&DtInfo>,
        period_us: u64,
        el: u8,
        uart: Option<(usize, u32)>,
    ) {
        let (cfg, note) = match dt {
            Some(dt) => WakeConfig::plan(dt, timer::freq(), period_us),
            None => (WakeConfig::wfe_only(), Some("no device tree".into())),
        };
        gic::init(&cfg, el, cpu::mpidr(), uart);
        self.config = cfg;
        self.note = note;
    }

    /// The wake block the pen gets.
    pub const fn config(&self) -> &WakeConfig {
        &self.config
    }

    /// For `bdinfo`: how the boot CPU idles and how often pen CPUs wake.
    pub fn describe(&self) -> String {
        format!(
            "{} (boot CPU; pen CPUs wake every {} us{})",
            gic::idle_method(),
            self.config.period_us(timer::freq()),
            self.note
                .as_ref()
                .map(|n| format!(", no timer interrupt: {n}"))
                .unwrap_or_default()
        )
    }
}
