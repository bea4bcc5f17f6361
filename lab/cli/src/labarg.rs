//! How a command names the lab it acts on: `--lab LAB`, or the older positional `LAB`
//! that `down`, `status`, `stats`, `conns` and `service list` accepted first, so no
//! script breaks. Without either, the only lab that is up (see `lvslab_engine::resolve_lab`).

/// `--lab LAB` or a positional `LAB`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LabArg {
    /// The lab (default: the only lab that is up).
    #[arg(long = "lab", value_name = "LAB")]
    pub lab: Option<String>,
    /// Same as --lab (the older positional form).
    #[arg(value_name = "LAB", conflicts_with = "lab")]
    pub lab_positional: Option<String>,
}

impl LabArg {
    /// The lab the user named, if any.
    pub fn name(&self) -> Option<&str> {
        self.lab.as_deref().or(self.lab_positional.as_deref())
    }
}
