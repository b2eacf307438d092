//! StatefulSet defaults (`SetDefaults_StatefulSet`, pkg/apis/apps/v1/defaults.go).

use crate::typed::StatefulSet;

pub fn stateful_set(sts: &mut StatefulSet) {
    let spec = sts.spec.get_or_insert_default();
    super::pod_spec(spec.template.spec.get_or_insert_default());
}
