//! The statefulset controller (to come: issue 20, item 2).

use crate::controllers::Caches;
use crate::state::Shared;

pub fn sync(_shared: &Shared, _decoded: &mut Caches) {}
