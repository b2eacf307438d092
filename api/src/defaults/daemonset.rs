//! DaemonSet defaults (`SetDefaults_DaemonSet`, pkg/apis/apps/v1/defaults.go).

use crate::typed::DaemonSet;

pub fn daemon_set(ds: &mut DaemonSet) {
    let spec = ds.spec.get_or_insert_default();
    super::pod_spec(spec.template.spec.get_or_insert_default());
}
