//! lineinfile, blockinfile and replace: edit text files in place (in progress).

use super::{Ctx, ModuleError, Outcome};
use crate::plan::Vars;

/// `lineinfile`.
pub(super) fn lineinfile(_a: &Vars, _c: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    Err(ModuleError::Unsupported("lineinfile".into()))
}

/// `blockinfile`.
pub(super) fn blockinfile(_a: &Vars, _c: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    Err(ModuleError::Unsupported("blockinfile".into()))
}

/// `replace`.
pub(super) fn replace(_a: &Vars, _c: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    Err(ModuleError::Unsupported("replace".into()))
}
