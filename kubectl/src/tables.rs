//! `kubectl get` tables (CLI-1..CLI-15): the server-side table printers' columns and cell rules,
//! decorated the way kubectl's table printer does (NAMESPACE column, kind prefix, label columns).

use emu_logic::cluster::HOST_LABEL;
use serde_json::Value;

use super::{age, at, bool_at, format_labels, int_at, list_at, resource_name, selector_string, str_at, string_pairs, tabwrite, time};

/// `kubectl get` flags that change the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// `-o wide`
    pub wide: bool,
    /// `-A`: prepend a NAMESPACE column (namespaced kinds only).
    pub all_namespaces: bool,
    /// `--no-headers`
    pub no_headers: bool,
    /// `--show-labels`: append a LABELS column.
    pub show_labels: bool,
    /// `-L k1,k2`: one column per label key.
    pub label_columns: Vec<String>,
    /// Several kinds in one `get` (CLI-4): NAME cells read `pod/x`, `deployment.apps/x`.
    pub kind_prefix: bool,
}

/// A `kubectl get` table for objects of one kind. `now` is unix seconds (for AGE). An empty
/// `objects` gives an empty string (kubectl then prints "No resources found" on stderr). The
/// columns and cells are [`column_definitions`] and [`row_cells`], what emu's API server sends
/// kubectl as a Table, laid out as kubectl lays out a server's Table.
pub fn table(kind: &str, objects: &[Value], opts: &TableOptions, now: i64) -> String {
    if objects.is_empty() {
        return String::new();
    }
    tabwrite(&table_rows(kind, objects, opts, now), 6, 3)
}

/// The cells of [`table`], its header first unless `opts.no_headers`: what `get --watch` lays
/// out line by line with a [`crate::WatchWriter`].
pub fn table_rows(kind: &str, objects: &[Value], opts: &TableOptions, now: i64) -> Vec<Vec<String>> {
    let columns = column_definitions(kind, objects);
    let shown: Vec<bool> = columns.iter().map(|c| opts.wide || c.priority == 0).collect();
    let with_namespace = opts.all_namespaces && !CLUSTER_SCOPED.contains(&kind);
    // kubectl prefixes the column of format "name" with the kind; an Event table shows that
    // column only with `-o wide` (as its last), so without it nothing is prefixed.
    let name_column = columns.iter().position(|c| c.format == "name").filter(|i| shown[*i]);
    let mut rows = Vec::with_capacity(objects.len() + 1);
    if !opts.no_headers {
        let mut header: Vec<String> = Vec::new();
        if with_namespace {
            header.push("NAMESPACE".into());
        }
        header.extend(columns.iter().zip(&shown).filter(|(_, s)| **s).map(|(c, _)| c.name.to_uppercase()));
        header.extend(opts.label_columns.iter().map(|l| l.rsplit('/').next().unwrap_or(l).to_uppercase()));
        if opts.show_labels {
            header.push("LABELS".into());
        }
        rows.push(header);
    }
    for obj in objects {
        let mut row: Vec<String> = Vec::new();
        if with_namespace {
            row.push(str_at(obj, &["metadata", "namespace"]).to_string());
        }
        let mut cells: Vec<String> = row_cells(kind, obj, opts.wide, now).into_iter().take(columns.len()).map(|c| c.to_string()).collect();
        if let Some(i) = name_column.filter(|_| opts.kind_prefix) {
            cells[i] = resource_name(kind, &cells[i]);
        }
        row.extend(cells.into_iter().zip(&shown).filter(|(_, s)| **s).map(|(c, _)| cut_at_newline(c)));
        let labels = at(obj, &["metadata", "labels"]);
        for key in &opts.label_columns {
            row.push(labels.and_then(|l| l.get(key)).and_then(Value::as_str).unwrap_or("").to_string());
        }
        if opts.show_labels {
            row.push(format_labels(labels));
        }
        rows.push(row);
    }
    rows
}

const CLUSTER_SCOPED: [&str; 8] =
    ["Node", "Namespace", "IngressClass", "GatewayClass", "PersistentVolume", "StorageClass", "ClusterRole", "ClusterRoleBinding"];

/// A cell holding a newline is cut there and marked with `...` (CLI-1).
fn cut_at_newline(cell: String) -> String {
    match cell.find('\n') {
        Some(i) => format!("{}...", &cell[..i]),
        None => cell,
    }
}

/// One column of a kind's table as kube-apiserver defines it (`metav1.TableColumnDefinition`,
/// from kubernetes' `pkg/printers/internalversion/printers.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDefinition {
    /// As kube-apiserver names it (`Name`, `Nominated Node`); kubectl prints it upper-cased.
    pub name: &'static str,
    /// The OpenAPI type: `string`, `integer`, `date`.
    pub type_: &'static str,
    /// `name` on the column holding the object's name (kubectl prefixes it with the kind when a
    /// `get` shows several kinds), else empty.
    pub format: &'static str,
    pub description: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: i32,
}

/// One cell of a row, typed as kube-apiserver's printers type it: counts are integers (JSON
/// numbers in a server-side Table), everything else text. kubectl prints both with Go's `%v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cell {
    Text(String),
    Integer(i64),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Text(s) => f.write_str(s),
            Cell::Integer(n) => write!(f, "{n}"),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Cell {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Cell {
        Cell::Text(s.to_string())
    }
}

impl From<i64> for Cell {
    fn from(n: i64) -> Cell {
        Cell::Integer(n)
    }
}

impl From<usize> for Cell {
    fn from(n: usize) -> Cell {
        Cell::Integer(i64::try_from(n).unwrap_or(i64::MAX))
    }
}

impl PartialEq<&str> for Cell {
    fn eq(&self, other: &&str) -> bool {
        match self {
            Cell::Text(s) => s == other,
            Cell::Integer(n) => n.to_string() == *other,
        }
    }
}

impl From<Cell> for Value {
    fn from(cell: Cell) -> Value {
        match cell {
            Cell::Text(s) => Value::String(s),
            Cell::Integer(n) => Value::from(n),
        }
    }
}

/// The columns of the table of `objects` (all of `kind`), wide ones included (priority 1):
/// kube-apiserver's, in its order, then emu's label column of the kind if one of `objects`
/// carries its label, not empty (see [`LabelColumn`]). The same objects give the same columns, whether
/// emu prints them or its API server sends them to kubectl as a Table.
pub fn column_definitions<'a>(kind: &str, objects: impl IntoIterator<Item = &'a Value>) -> Vec<ColumnDefinition> {
    let printer = printer(kind);
    let mut columns = printer.columns;
    if let Some(extra) = printer.label_column {
        if objects.into_iter().any(|o| !str_at(o, &["metadata", "labels", extra.label]).is_empty()) {
            columns.push(extra.column);
        }
    }
    columns
}

/// The cells of `obj`'s row, wide ones included: one per column of kube-apiserver's, then one
/// for emu's label column of the kind, if it has one. A table takes the first as many as
/// [`column_definitions`] gives it columns (emu's column is the last, and not always there).
/// `wide` is kube-apiserver's `GenerateOptions.Wide`: only a LoadBalancer's EXTERNAL-IP reads it
/// (cut to 16 characters without it, CLI-8); kube-apiserver builds its Tables with `true`, and
/// kubectl printing a Table does not cut again. `now` is unix seconds (for AGE).
pub fn row_cells(kind: &str, obj: &Value, wide: bool, now: i64) -> Vec<Cell> {
    let printer = printer(kind);
    let mut cells = (printer.row)(obj, wide, now);
    if let Some(extra) = printer.label_column {
        cells.push(or_none(str_at(obj, &["metadata", "labels", extra.label])).into());
    }
    cells
}

struct Printer {
    /// Every column in kube-apiserver's order. Wide columns mostly come last, but not always:
    /// an Event's Message sits between them.
    columns: Vec<ColumnDefinition>,
    /// All cells of one object, the wide ones included, in column order.
    row: RowFn,
    /// emu's own column after kube-apiserver's, if the kind has one.
    label_column: Option<LabelColumn>,
}

/// A column emu adds to kube-apiserver's: the value of a label (`<none>` on an object without
/// it), in a table only when one of its objects carries the label. A table of objects without
/// it is then kube-apiserver's byte for byte (a single machine's nodes have no host), and one
/// that needs it shows it without `-L` (kubectl prints a Table's columns, whoever defines them).
#[derive(Debug, Clone, Copy)]
struct LabelColumn {
    column: ColumnDefinition,
    label: &'static str,
}

/// A node's machine in a cluster over several (issue 18), shown with `-o wide`.
const NODE_HOST: LabelColumn = LabelColumn {
    column: col("Host", "string", "The machine the node runs on, its label emu.dev/host (emu's, over several machines).", 1),
    label: HOST_LABEL,
};

/// `(object, wide, now) -> cells`
type RowFn = fn(&Value, bool, i64) -> Vec<Cell>;

// What kube-apiserver's column descriptions quote from the API's documentation.
const NAME_DOC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DOC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const ROLE_REF_DOC: &str = "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.";
const CONTAINERS_DOC: &str = "Names of each container in the template.";
const JOB_SELECTOR_DOC: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";
const CRONJOB_TIMEZONE_DOC: &str = "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of the CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More info: https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones";
const IMAGES_DOC: &str = "Images referenced by each container in the template.";

/// A column: (name, type, description, priority). The name column and Age are [`NAME`] and
/// [`AGE`].
const fn col(name: &'static str, type_: &'static str, description: &'static str, priority: i32) -> ColumnDefinition {
    ColumnDefinition { name, type_, format: "", description, priority }
}
const NAME: ColumnDefinition = ColumnDefinition { name: "Name", type_: "string", format: "name", description: NAME_DOC, priority: 0 };
const AGE: ColumnDefinition = col("Age", "string", AGE_DOC, 0);

/// The Event table (`printEvent`), in kube-apiserver's column order.
const EVENT_COLUMNS: [ColumnDefinition; 10] = [
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded.", 0),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future", 0),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.", 0),
    col("Object", "string", "The object that this event is about.", 0),
    col("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]. For example, if the object reference is to a container within a pod, this would take on a value like: \"spec.containers{name}\" (where \"name\" refers to the name of the container that triggered the event) or if no container name is specified \"spec.containers[2]\" (container with index 2 in this pod). This syntax is chosen only to have some well-defined way of referencing a part of an object.", 1),
    col("Source", "string", "The component reporting this event. Should be a short machine understandable string.", 1),
    col("Message", "string", "A human-readable description of the status of this operation.", 0),
    col("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)", 1),
    col("Count", "string", "The number of times this event has occurred.", 1),
    ColumnDefinition { priority: 1, ..NAME },
];

fn printer(kind: &str) -> Printer {
    let (columns, row): (Vec<ColumnDefinition>, RowFn) = match kind {
        "Event" => (EVENT_COLUMNS.to_vec(), event_row),
        "Pod" => (
            vec![
                NAME,
                col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic.", 0),
                col("Status", "string", "The aggregate status of the containers in this pod.", 0),
                col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.", 0),
                AGE,
                col("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.", 1),
                col("Node", "string", "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename", 1),
                col("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled.", 1),
                col("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates", 1),
            ],
            pod_row,
        ),
        "Node" => (
            vec![
                NAME,
                col("Status", "string", "The status of the node", 0),
                col("Roles", "string", "The roles of the node", 0),
                AGE,
                col("Version", "string", "Kubelet Version reported by the node.", 0),
                col("Internal-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses", 1),
                col("External-IP", "string", "List of addresses reachable to the node. Queried from cloud provider, if available. More info: https://kubernetes.io/docs/reference/node/node-status/#addresses", 1),
                col("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).", 1),
                col("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
                col("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).", 1),
            ],
            node_row,
        ),
        "Deployment" => (
            vec![
                NAME,
                col("Ready", "string", "Number of the pod with ready state", 0),
                col("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec.", 0),
                col("Available", "string", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment.", 0),
                AGE,
                col("Containers", "string", CONTAINERS_DOC, 1),
                col("Images", "string", IMAGES_DOC, 1),
                col("Selector", "string", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment. It must match the pod template's labels.", 1),
            ],
            deployment_row,
        ),
        "ReplicaSet" => (
            vec![
                NAME,
                col("Desired", "integer", "Replicas is the number of desired pods. This is a pointer to distinguish between explicit zero and unspecified. Defaults to 1. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#how-a-replicaset-works", 0),
                col("Current", "integer", "Replicas is the most recently observed number of non-terminating pods. More info: https://kubernetes.io/docs/concepts/workloads/controllers/replicaset/#how-a-replicaset-works", 0),
                col("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition.", 0),
                AGE,
                col("Containers", "string", CONTAINERS_DOC, 1),
                col("Images", "string", IMAGES_DOC, 1),
                col("Selector", "string", "Selector is a label query over pods that should match the replica count. Label keys and values that must match in order to be controlled by this replica set. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
            ],
            replicaset_row,
        ),
        "DaemonSet" => (
            vec![
                NAME,
                col("Desired", "integer", "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod). More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", 0),
                col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod. More info: https://kubernetes.io/docs/concepts/workloads/controllers/daemonset/", 0),
                col("Ready", "integer", "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.", 0),
                col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod", 0),
                col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)", 0),
                col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node. More info: https://kubernetes.io/docs/concepts/configuration/assign-pod-node/", 0),
                AGE,
                col("Containers", "string", CONTAINERS_DOC, 1),
                col("Images", "string", IMAGES_DOC, 1),
                col("Selector", "string", "A label query over pods that are managed by the daemon set. Must match in order to be controlled. It must match the pod template's labels. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors", 1),
            ],
            daemonset_row,
        ),
        "StatefulSet" => (
            vec![
                NAME,
                col("Ready", "string", "Number of the pod with ready state", 0),
                AGE,
                col("Containers", "string", CONTAINERS_DOC, 1),
                col("Images", "string", IMAGES_DOC, 1),
            ],
            statefulset_row,
        ),
        "ControllerRevision" => (
            vec![
                NAME,
                col("Controller", "string", "Controller of the object", 0),
                col("Revision", "string", "Revision indicates the revision of the state represented by Data.", 0),
                AGE,
            ],
            controllerrevision_row,
        ),
        "Job" => (
            vec![
                NAME,
                col("Status", "string", "Status of the job.", 0),
                col("Completions", "string", "The completion status of the job.", 0),
                col("Duration", "string", "Time required to complete the job.", 0),
                AGE,
                col("Containers", "string", CONTAINERS_DOC, 1),
                col("Images", "string", IMAGES_DOC, 1),
                col("Selector", "string", JOB_SELECTOR_DOC, 1),
            ],
            job_row,
        ),
        "CronJob" => (
            vec![
                NAME,
                col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.", 0),
                col("Timezone", "string", CRONJOB_TIMEZONE_DOC, 0),
                col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.", 0),
                col("Active", "integer", "A list of pointers to currently running jobs.", 0),
                col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled.", 0),
                AGE,
                col("Containers", "string", CONTAINERS_DOC, 1),
                col("Images", "string", IMAGES_DOC, 1),
                col("Selector", "string", JOB_SELECTOR_DOC, 1),
            ],
            cronjob_row,
        ),
        "Namespace" => (vec![NAME, col("Status", "string", "The status of the namespace", 0), AGE], namespace_row),
        "Service" => (
            vec![
                NAME,
                col("Type", "string", "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer. \"ClusterIP\" allocates a cluster-internal IP address for load-balancing to endpoints. Endpoints are determined by the selector or if that is not specified, by manual construction of an Endpoints object or EndpointSlice objects. If clusterIP is \"None\", no virtual IP is allocated and the endpoints are published as a set of endpoints rather than a virtual IP. \"NodePort\" builds on ClusterIP and allocates a port on every node which routes to the same endpoints as the clusterIP. \"LoadBalancer\" builds on NodePort and creates an external load-balancer (if supported in the current cloud) which routes to the same endpoints as the clusterIP. \"ExternalName\" aliases this service to the specified externalName. Several other fields do not apply to ExternalName services. More info: https://kubernetes.io/docs/concepts/services-networking/service/#publishing-services-service-types", 0),
                col("Cluster-IP", "string", "clusterIP is the IP address of the service and is usually assigned randomly. If an address is specified manually, is in-range (as per system configuration), and is not in use, it will be allocated to the service; otherwise creation of the service will fail. This field may not be changed through updates unless the type field is also being changed to ExternalName (which requires this field to be blank) or the type field is being changed from ExternalName (in which case this field may optionally be specified, as describe above).  Valid values are \"None\", empty string (\"\"), or a valid IP address. Setting this to \"None\" makes a \"headless service\" (no virtual IP), which is useful when direct endpoint connections are preferred and proxying is not required.  Only applies to types ClusterIP, NodePort, and LoadBalancer. If this field is specified when creating a Service of type ExternalName, creation will fail. This field will be wiped when updating a Service to type ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies", 0),
                col("External-IP", "string", "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.  These IPs are not managed by Kubernetes.  The user is responsible for ensuring that traffic arrives at a node with this IP.  A common example is external load-balancers that are not part of the Kubernetes system.", 0),
                col("Port(s)", "string", "The list of ports that are exposed by this service. More info: https://kubernetes.io/docs/concepts/services-networking/service/#virtual-ips-and-service-proxies", 0),
                AGE,
                col("Selector", "string", "Route service traffic to pods with label keys and values matching this selector. If empty or not present, the service is assumed to have an external process managing its endpoints, which Kubernetes will not modify. Only applies to types ClusterIP, NodePort, and LoadBalancer. Ignored if type is ExternalName. More info: https://kubernetes.io/docs/concepts/services-networking/service/", 1),
            ],
            service_row,
        ),
        "Endpoints" => (
            vec![
                NAME,
                col("Endpoints", "string", "The set of all endpoints is the union of all subsets. Addresses are placed into subsets according to the IPs they share. A single address with multiple ports, some of which are ready and some of which are not (because they come from different containers) will result in the address being displayed in different subsets for the different ports. No address will appear in both Addresses and NotReadyAddresses in the same subset. Sets of addresses and ports that comprise a service.", 0),
                AGE,
            ],
            endpoints_row,
        ),
        "EndpointSlice" => (
            vec![
                NAME,
                col("AddressType", "string", "addressType specifies the type of address carried by this EndpointSlice. All addresses in this slice must be the same type. This field is immutable after creation. The following address types are currently supported: * IPv4: Represents an IPv4 Address. * IPv6: Represents an IPv6 Address. * FQDN: Represents a Fully Qualified Domain Name. (Deprecated) The EndpointSlice controller only generates, and kube-proxy only processes, slices of addressType \"IPv4\" and \"IPv6\". No semantics are defined for the \"FQDN\" type.", 0),
                col("Ports", "string", "ports specifies the list of network ports exposed by each endpoint in this slice. Each port must have a unique name. Each slice may include a maximum of 100 ports. Services always have at least 1 port, so EndpointSlices generated by the EndpointSlice controller will likewise always have at least 1 port. EndpointSlices used for other purposes may have an empty ports list.", 0),
                col("Endpoints", "string", "endpoints is a list of unique endpoints in this slice. Each slice may include a maximum of 1000 endpoints.", 0),
                AGE,
            ],
            endpointslice_row,
        ),
        "Secret" => (
            vec![
                NAME,
                col("Type", "string", "Used to facilitate programmatic handling of secret data. More info: https://kubernetes.io/docs/concepts/configuration/secret/#secret-types", 0),
                col("Data", "string", "Data contains the secret data. Each key must consist of alphanumeric characters, '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string, representing the arbitrary (possibly non-string) data value here. Described in https://tools.ietf.org/html/rfc4648#section-4", 0),
                AGE,
            ],
            secret_row,
        ),
        "ConfigMap" => (
            vec![
                NAME,
                col("Data", "string", "Data contains the configuration data. Each key must consist of alphanumeric characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the BinaryData field. The keys stored in Data must not overlap with the keys in the BinaryData field, this is enforced during validation process.", 0),
                AGE,
            ],
            configmap_row,
        ),
        "ServiceAccount" => (
            vec![
                NAME,
                col("Secrets", "string", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use. Pods are only limited to this list if this service account has a \"kubernetes.io/enforce-mountable-secrets\" annotation set to \"true\". The \"kubernetes.io/enforce-mountable-secrets\" annotation is deprecated since v1.32. Prefer separate namespaces to isolate access to mounted secrets. This field should not be used to find auto-generated service account token secrets for use outside of pods. Instead, tokens can be requested directly using the TokenRequest API, or service account token secrets can be manually created. More info: https://kubernetes.io/docs/concepts/configuration/secret", 0),
                AGE,
            ],
            serviceaccount_row,
        ),
        "Ingress" => (
            vec![
                NAME,
                col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration", 0),
                col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule", 0),
                col("Address", "string", "Address is a list containing ingress points for the load-balancer", 0),
                col("Ports", "string", "Ports of TLS configurations that open", 0),
                AGE,
            ],
            ingress_row,
        ),
        "IngressClass" => (
            vec![
                NAME,
                col("Controller", "string", "Controller that is responsible for handling this class", 0),
                col("Parameters", "string", "A reference to a resource with additional parameters", 0),
                AGE,
            ],
            ingressclass_row,
        ),
        // kube-apiserver has no printer for roles: its default Table (`rest.DefaultTableConvertor`)
        // has the name and the creation time as RFC 3339, which kubectl prints as it is.
        "Role" | "ClusterRole" => (vec![NAME, col("Created At", "date", AGE_DOC, 0)], role_row),
        "RoleBinding" | "ClusterRoleBinding" => {
            let (users, groups, sas) = if kind == "RoleBinding" {
                ("Users in the roleBinding", "Groups in the roleBinding", "ServiceAccounts in the roleBinding")
            } else {
                ("Users in the clusterRoleBinding", "Groups in the clusterRoleBinding", "ServiceAccounts in the clusterRoleBinding")
            };
            (
                vec![
                    NAME,
                    col("Role", "string", ROLE_REF_DOC, 0),
                    AGE,
                    col("Users", "string", users, 1),
                    col("Groups", "string", groups, 1),
                    col("ServiceAccounts", "string", sas, 1),
                ],
                role_binding_row,
            )
        }
        // The Gateway API's kinds: their CRDs' additionalPrinterColumns, as kube-apiserver's
        // table convertor for custom resources serves them (a date column as an age).
        "GatewayClass" => (
            vec![
                NAME,
                col("Controller", "string", "Custom resource definition column (in JSONPath format): .spec.controllerName", 0),
                col("Accepted", "string", "Custom resource definition column (in JSONPath format): .status.conditions[?(@.type==\"Accepted\")].status", 0),
                CRD_AGE,
                col("Description", "string", "Custom resource definition column (in JSONPath format): .spec.description", 1),
            ],
            gatewayclass_row,
        ),
        "Gateway" => (
            vec![
                NAME,
                col("Class", "string", "Custom resource definition column (in JSONPath format): .spec.gatewayClassName", 0),
                col("Address", "string", "Custom resource definition column (in JSONPath format): .status.addresses[*].value", 0),
                col("Programmed", "string", "Custom resource definition column (in JSONPath format): .status.conditions[?(@.type==\"Programmed\")].status", 0),
                CRD_AGE,
            ],
            gateway_row,
        ),
        "HTTPRoute" => (
            vec![NAME, col("Hostnames", "string", "Custom resource definition column (in JSONPath format): .spec.hostnames", 0), CRD_AGE],
            httproute_row,
        ),
        // Kinds without a printer of their own (emu's Fault): what kube-apiserver serves for a
        // custom resource without printer columns, whose Age is a date kubectl shows as an age.
        _ => (vec![NAME, col("Age", "date", AGE_DOC, 0)], default_row),
    };
    let label_column = match kind {
        "Node" => Some(NODE_HOST),
        _ => None,
    };
    Printer { columns, row, label_column }
}

fn name(obj: &Value) -> String {
    str_at(obj, &["metadata", "name"]).to_string()
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.to_string()
    }
}

/// `first 3 joined by ",", then " + N more..."`, shared by several cells (EP-7, CLI-10, CLI-15).
fn list_with_more(list: &[String], count: usize, empty: &str) -> String {
    let shown = list.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if count > 3 {
        format!("{shown} + {} more...", count - 3)
    } else if shown.is_empty() {
        empty.to_string()
    } else {
        shown
    }
}

/// `net.JoinHostPort`: IPv6 addresses get brackets.
fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

// ---- Gateway API (custom resources' printer columns) -------------------------------------------

/// A custom resource's Age column: its CRD's columns are described by their JSONPath when the
/// CRD gives no description (the Gateway API's give none).
const CRD_AGE: ColumnDefinition =
    col("Age", "date", "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp", 0);

/// A simple JSONPath's first result as the custom resource table convertor prints it: a string
/// as it is, a list or object as JSON, nothing as an empty cell.
fn jsonpath_cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// `.status.conditions[?(@.type=="<kind>")].status`.
fn condition_status(obj: &Value, kind: &str) -> String {
    let found = list_at(obj, &["status", "conditions"]).iter().find(|c| str_at(c, &["type"]) == kind);
    jsonpath_cell(found.and_then(|c| c.get("status")))
}

fn gatewayclass_row(gc: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let description = jsonpath_cell(at(gc, &["spec", "description"]));
    [name(gc), str_at(gc, &["spec", "controllerName"]).to_string(), condition_status(gc, "Accepted"), age(gc, now), description]
        .map(Cell::from)
        .into()
}

fn gateway_row(gw: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let address = jsonpath_cell(list_at(gw, &["status", "addresses"]).first().and_then(|a| a.get("value")));
    [name(gw), str_at(gw, &["spec", "gatewayClassName"]).to_string(), address, condition_status(gw, "Programmed"), age(gw, now)]
        .map(Cell::from)
        .into()
}

fn httproute_row(route: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    vec![name(route).into(), jsonpath_cell(at(route, &["spec", "hostnames"])).into(), age(route, now).into()]
}

fn default_row(obj: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    vec![name(obj).into(), age(obj, now).into()]
}

// ---- Pod (CLI-7) ------------------------------------------------------------------------------

fn has_condition(pod: &Value, kind: &str) -> bool {
    list_at(pod, &["status", "conditions"]).iter().any(|c| str_at(c, &["type"]) == kind && str_at(c, &["status"]) == "True")
}

/// `lastState.terminated.finishedAt` of a container status, as (seconds, nanos).
fn last_finished(status: &Value) -> Option<(i64, u32)> {
    at(status, &["lastState", "terminated", "finishedAt"]).and_then(Value::as_str).and_then(emu_api::time::parse_rfc3339_nanos)
}

/// The pod row, following `printPod`: READY, the STATUS reason precedence, RESTARTS with the age
/// of the last restart.
fn pod_row(pod: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let init_specs = list_at(pod, &["spec", "initContainers"]);
    let is_sidecar = |name: &str| init_specs.iter().any(|c| str_at(c, &["name"]) == name && str_at(c, &["restartPolicy"]) == "Always");
    let total =
        list_at(pod, &["spec", "containers"]).len() + init_specs.iter().filter(|c| str_at(c, &["restartPolicy"]) == "Always").count();
    let mut ready = 0;
    let phase = str_at(pod, &["status", "phase"]);
    let mut reason = match str_at(pod, &["status", "reason"]) {
        "" => phase.to_string(),
        r => r.to_string(),
    };
    for c in list_at(pod, &["status", "conditions"]) {
        if str_at(c, &["type"]) == "PodScheduled" && str_at(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".into();
        }
    }

    let init_statuses = list_at(pod, &["status", "initContainerStatuses"]);
    let (mut restarts, mut sidecar_restarts) = (0i64, 0i64);
    let (mut last_restart, mut last_sidecar_restart) = (None, None);
    let mut initializing = false;
    for (i, cs) in init_statuses.iter().enumerate() {
        let count = int_at(cs, &["restartCount"]);
        restarts += count;
        last_restart = last_restart.max(last_finished(cs));
        let sidecar = is_sidecar(str_at(cs, &["name"]));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = last_sidecar_restart.max(last_finished(cs));
        }
        let terminated = at(cs, &["state", "terminated"]);
        let waiting_reason = str_at(cs, &["state", "waiting", "reason"]);
        if terminated.is_some_and(|t| int_at(t, &["exitCode"]) == 0) {
            continue;
        }
        if sidecar && bool_at(cs, &["started"]) {
            if bool_at(cs, &["ready"]) {
                ready += 1;
            }
            continue;
        }
        reason = if let Some(t) = terminated {
            match str_at(t, &["reason"]) {
                "" if int_at(t, &["signal"]) != 0 => {
                    format!("Init:Signal:{}", int_at(t, &["signal"]))
                }
                "" => format!("Init:ExitCode:{}", int_at(t, &["exitCode"])),
                r => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }

    // While init containers run, their restarts are what RESTARTS shows; afterwards only
    // sidecars' and the app containers' restarts count.
    if !initializing || has_condition(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let statuses = list_at(pod, &["status", "containerStatuses"]);
        let mut has_running = false;
        // kubectl walks the statuses backwards, so the first container's reason wins.
        for cs in statuses.iter().rev() {
            restarts += int_at(cs, &["restartCount"]);
            last_restart = last_restart.max(last_finished(cs));
            let waiting = str_at(cs, &["state", "waiting", "reason"]);
            let terminated = at(cs, &["state", "terminated"]);
            if !waiting.is_empty() {
                reason = waiting.to_string();
            } else if let Some(t) = terminated {
                reason = match str_at(t, &["reason"]) {
                    "" if int_at(t, &["signal"]) != 0 => {
                        format!("Signal:{}", int_at(t, &["signal"]))
                    }
                    "" => format!("ExitCode:{}", int_at(t, &["exitCode"])),
                    r => r.to_string(),
                };
            } else if bool_at(cs, &["ready"]) && at(cs, &["state", "running"]).is_some() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if has_condition(pod, "Ready") { "Running".into() } else { "NotReady".into() };
        }
    }

    let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_some_and(|d| !d.is_null());
    if deleting && str_at(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".into();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".into();
    }

    let restarts = match last_restart {
        Some((secs, _)) if restarts != 0 => {
            format!("{restarts} ({} ago)", time::human_duration(now - secs))
        }
        _ => restarts.to_string(),
    };
    let ip = list_at(pod, &["status", "podIPs"]).first().map(|p| str_at(p, &["ip"])).unwrap_or("");
    let gates = list_at(pod, &["spec", "readinessGates"]);
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let ready = gates
            .iter()
            .filter(|g| {
                let kind = str_at(g, &["conditionType"]);
                list_at(pod, &["status", "conditions"])
                    .iter()
                    .find(|c| str_at(c, &["type"]) == kind)
                    .is_some_and(|c| str_at(c, &["status"]) == "True")
            })
            .count();
        format!("{ready}/{}", gates.len())
    };
    [
        name(pod),
        format!("{ready}/{total}"),
        reason,
        restarts,
        age(pod, now),
        or_none(ip),
        or_none(str_at(pod, &["spec", "nodeName"])),
        or_none(str_at(pod, &["status", "nominatedNodeName"])),
        gates,
    ]
    .map(Cell::from)
    .into()
}

// ---- Node (CLI-11) ----------------------------------------------------------------------------

/// Roles from `node-role.kubernetes.io/<role>` labels (and the legacy `kubernetes.io/role`).
pub(super) fn node_roles(node: &Value) -> Vec<String> {
    let mut roles: Vec<String> = string_pairs(at(node, &["metadata", "labels"]))
        .into_iter()
        .filter_map(|(k, v)| match k.strip_prefix("node-role.kubernetes.io/") {
            Some(role) if !role.is_empty() => Some(role.to_string()),
            Some(_) => None,
            None if k == "kubernetes.io/role" && !v.is_empty() => Some(v.to_string()),
            None => None,
        })
        .collect();
    roles.sort();
    roles.dedup();
    roles
}

fn node_address(node: &Value, kind: &str) -> String {
    list_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map(|a| str_at(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".into())
}

fn node_row(node: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let mut status = match list_at(node, &["status", "conditions"]).iter().find(|c| str_at(c, &["type"]) == "Ready") {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push_str(",SchedulingDisabled");
    }
    let roles = node_roles(node);
    let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
    let info = |field: &str| str_at(node, &["status", "nodeInfo", field]).to_string();
    let unknown = |s: String| {
        if s.is_empty() {
            "<unknown>".to_string()
        } else {
            s
        }
    };
    [
        name(node),
        status,
        roles,
        age(node, now),
        info("kubeletVersion"),
        node_address(node, "InternalIP"),
        node_address(node, "ExternalIP"),
        unknown(info("osImage")),
        unknown(info("kernelVersion")),
        unknown(info("containerRuntimeVersion")),
    ]
    .map(Cell::from)
    .into()
}

// ---- Deployment, ReplicaSet (CLI-14) ------------------------------------------------------------

fn container_cells(obj: &Value) -> [String; 2] {
    let containers = list_at(obj, &["spec", "template", "spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| str_at(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| str_at(c, &["image"])).collect();
    [names.join(","), images.join(",")]
}

/// `spec.replicas`, which defaults to 1.
fn desired_replicas(obj: &Value) -> i64 {
    at(obj, &["spec", "replicas"]).and_then(Value::as_i64).unwrap_or(1)
}

fn deployment_row(d: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let status = |f: &str| int_at(d, &["status", f]);
    let [names, images] = container_cells(d);
    vec![
        name(d).into(),
        format!("{}/{}", status("readyReplicas"), desired_replicas(d)).into(),
        status("updatedReplicas").into(),
        status("availableReplicas").into(),
        age(d, now).into(),
        names.into(),
        images.into(),
        selector_string(at(d, &["spec", "selector"])).into(),
    ]
}

fn replicaset_row(rs: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let [names, images] = container_cells(rs);
    vec![
        name(rs).into(),
        desired_replicas(rs).into(),
        int_at(rs, &["status", "replicas"]).into(),
        int_at(rs, &["status", "readyReplicas"]).into(),
        age(rs, now).into(),
        names.into(),
        images.into(),
        or_none(&selector_string(at(rs, &["spec", "selector"]))).into(),
    ]
}

// ---- DaemonSet, StatefulSet, ControllerRevision, Job, CronJob ------------------------------------

fn daemonset_row(ds: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let status = |f: &str| Cell::from(int_at(ds, &["status", f]));
    let [names, images] = container_cells(ds);
    vec![
        name(ds).into(),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        or_none(&format_labels(at(ds, &["spec", "template", "spec", "nodeSelector"]))).into(),
        age(ds, now).into(),
        names.into(),
        images.into(),
        or_none(&selector_string(at(ds, &["spec", "selector"]))).into(),
    ]
}

fn statefulset_row(sts: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let [names, images] = container_cells(sts);
    vec![
        name(sts).into(),
        format!("{}/{}", int_at(sts, &["status", "readyReplicas"]), desired_replicas(sts)).into(),
        age(sts, now).into(),
        names.into(),
        images.into(),
    ]
}

/// The controller column: `<none>`, or the controlling owner as `kind.group/name`.
fn controllerrevision_row(cr: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let owner = list_at(cr, &["metadata", "ownerReferences"]).iter().find(|r| bool_at(r, &["controller"]));
    let controller = owner.map_or_else(|| "<none>".to_string(), |r| resource_name(str_at(r, &["kind"]), str_at(r, &["name"])));
    vec![name(cr).into(), controller.into(), int_at(cr, &["revision"]).into(), age(cr, now).into()]
}

fn has_true_condition(obj: &Value, kind: &str) -> bool {
    list_at(obj, &["status", "conditions"]).iter().any(|c| str_at(c, &["type"]) == kind && str_at(c, &["status"]) == "True")
}

/// The Job's status as kube-apiserver's printer words it: its terminal conditions first.
fn job_status(job: &Value) -> &'static str {
    if has_true_condition(job, "Complete") {
        "Complete"
    } else if has_true_condition(job, "Failed") {
        "Failed"
    } else if at(job, &["metadata", "deletionTimestamp"]).is_some() {
        "Terminating"
    } else if has_true_condition(job, "FailureTarget") {
        "FailureTarget"
    } else if has_true_condition(job, "Suspended") {
        "Suspended"
    } else if has_true_condition(job, "SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

fn job_row(job: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let succeeded = int_at(job, &["status", "succeeded"]);
    let completions = match at(job, &["spec", "completions"]).and_then(Value::as_i64) {
        Some(n) => format!("{succeeded}/{n}"),
        None => match at(job, &["spec", "parallelism"]).and_then(Value::as_i64).unwrap_or(0) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let time = |f: &str| at(job, &["status", f]).and_then(Value::as_str).and_then(emu_api::time::parse_rfc3339);
    let duration = match (time("startTime"), time("completionTime")) {
        (None, _) => String::new(),
        (Some(start), None) => crate::human_duration(now - start),
        (Some(start), Some(end)) => crate::human_duration(end - start),
    };
    let [names, images] = container_cells(job);
    vec![
        name(job).into(),
        job_status(job).into(),
        completions.into(),
        duration.into(),
        age(job, now).into(),
        names.into(),
        images.into(),
        or_none(&selector_string(at(job, &["spec", "selector"]))).into(),
    ]
}

fn cronjob_row(cj: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let job_spec = at(cj, &["spec", "jobTemplate"]).cloned().unwrap_or(Value::Null);
    let [names, images] = container_cells(&job_spec);
    let suspend = match at(cj, &["spec", "suspend"]).and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let last = at(cj, &["status", "lastScheduleTime"]).and_then(Value::as_str);
    vec![
        name(cj).into(),
        str_at(cj, &["spec", "schedule"]).into(),
        or_none(str_at(cj, &["spec", "timeZone"])).into(),
        suspend.into(),
        list_at(cj, &["status", "active"]).len().into(),
        last.map_or_else(|| "<none>".to_string(), |t| crate::time::since(Some(t), now)).into(),
        age(cj, now).into(),
        names.into(),
        images.into(),
        or_none(&selector_string(at(&job_spec, &["spec", "selector"]))).into(),
    ]
}

fn namespace_row(ns: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    vec![name(ns).into(), str_at(ns, &["status", "phase"]).into(), age(ns, now).into()]
}

// ---- Service (CLI-8), Endpoints (CLI-9, EP-7), EndpointSlice (CLI-10) ---------------------------

/// Load-balancer ingress IPs/hostnames, sorted and de-duplicated; cut to 16 chars unless wide.
pub(crate) fn load_balancer_addresses(status: &Value, wide: bool) -> String {
    let mut list: Vec<&str> = list_at(status, &["loadBalancer", "ingress"])
        .iter()
        .map(|i| match str_at(i, &["ip"]) {
            "" => str_at(i, &["hostname"]),
            ip => ip,
        })
        .filter(|s| !s.is_empty())
        .collect();
    list.sort();
    list.dedup();
    let joined = list.join(",");
    if !wide && joined.len() > 16 {
        format!("{}...", &joined[..13])
    } else {
        joined
    }
}

fn service_row(svc: &Value, wide: bool, now: i64) -> Vec<Cell> {
    let svc_type = str_at(svc, &["spec", "type"]);
    let cluster_ip = list_at(svc, &["spec", "clusterIPs"]).first().and_then(Value::as_str).unwrap_or("<none>");
    let external_ips: Vec<&str> = list_at(svc, &["spec", "externalIPs"]).iter().filter_map(Value::as_str).collect();
    let external = match svc_type {
        "ClusterIP" | "NodePort" => or_none(&external_ips.join(",")),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(&svc["status"], wide);
            let mut all: Vec<&str> = if lb.is_empty() { Vec::new() } else { lb.split(',').collect() };
            all.extend(&external_ips);
            if all.is_empty() {
                "<pending>".to_string()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    };
    let ports: Vec<String> = list_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let (port, node_port, proto) = (int_at(p, &["port"]), int_at(p, &["nodePort"]), str_at(p, &["protocol"]));
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect();
    [
        name(svc),
        svc_type.to_string(),
        cluster_ip.to_string(),
        external,
        or_none(&ports.join(",")),
        age(svc, now),
        format_labels(at(svc, &["spec", "selector"])),
    ]
    .map(Cell::from)
    .into()
}

/// kubectl's `formatEndpoints` (EP-7): ready `ip:port` pairs, subsets → ports → addresses.
pub(super) fn format_endpoints(ep: &Value) -> String {
    let subsets = list_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".into();
    }
    let mut list = Vec::new();
    let mut count = 0;
    for ss in subsets {
        let addresses: Vec<&str> = list_at(ss, &["addresses"]).iter().map(|a| str_at(a, &["ip"])).collect();
        let ports = list_at(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            list.extend(addresses.iter().map(|ip| ip.to_string()));
            continue;
        }
        for port in ports {
            count += addresses.len();
            let port = int_at(port, &["port"]).to_string();
            list.extend(addresses.iter().map(|ip| join_host_port(ip, &port)));
        }
    }
    list_with_more(&list, count, "")
}

fn endpoints_row(ep: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    vec![name(ep).into(), format_endpoints(ep).into(), age(ep, now).into()]
}

fn endpointslice_row(slice: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let ports: Vec<String> = list_at(slice, &["ports"])
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(n) => n.to_string(),
            None => p.get("name").and_then(Value::as_str).unwrap_or("*").to_string(),
        })
        .collect();
    let addresses: Vec<String> = list_at(slice, &["endpoints"])
        .iter()
        .flat_map(|e| list_at(e, &["addresses"]).iter().filter_map(Value::as_str).map(str::to_string))
        .collect();
    [
        name(slice),
        str_at(slice, &["addressType"]).to_string(),
        list_with_more(&ports, ports.len(), "<unset>"),
        list_with_more(&addresses, addresses.len(), "<unset>"),
        age(slice, now),
    ]
    .map(Cell::from)
    .into()
}

// ---- Event ----------------------------------------------------------------------------------------

/// kubectl's `printEvent`. Events are listed in API order (by name, which groups them by
/// object): `kubectl get events` does not sort unless asked to with `--sort-by`.
fn event_row(e: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let set = |path: &[&str]| !str_at(e, path).is_empty();
    let since = |path: &[&str]| time::since(at(e, path).and_then(Value::as_str), now);
    // Legacy events carry first/lastTimestamp; events.k8s.io ones carry eventTime and, once
    // repeated, a series.
    let first_seen = if set(&["firstTimestamp"]) { since(&["firstTimestamp"]) } else { since(&["eventTime"]) };
    let mut last_seen = if set(&["lastTimestamp"]) { since(&["lastTimestamp"]) } else { first_seen.clone() };
    let mut count = int_at(e, &["count"]);
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        last_seen = since(&["series", "lastObservedTime"]);
        count = int_at(series, &["count"]);
    } else if count == 0 {
        // Singleton events of the new API have no count.
        count = 1;
    }
    let kind = str_at(e, &["involvedObject", "kind"]).to_lowercase();
    let object = match str_at(e, &["involvedObject", "name"]) {
        "" => kind,
        name => format!("{kind}/{name}"),
    };
    let message = str_at(e, &["message"]).trim().to_string();
    // `formatEventSource`: the legacy source, else the reporting fields; `component, host`.
    let first_non_empty = |a: &[&str], b: &[&str]| match str_at(e, a) {
        "" => str_at(e, b),
        s => s,
    };
    let component = first_non_empty(&["source", "component"], &["reportingComponent"]);
    let source = match first_non_empty(&["source", "host"], &["reportingInstance"]) {
        "" => component.to_string(),
        host => format!("{component}, {host}"),
    };
    vec![
        last_seen.into(),
        str_at(e, &["type"]).into(),
        str_at(e, &["reason"]).into(),
        object.into(),
        str_at(e, &["involvedObject", "fieldPath"]).into(),
        source.into(),
        message.into(),
        first_seen.into(),
        count.into(),
        name(e).into(),
    ]
}

// ---- Secret, ConfigMap, ServiceAccount (CLI-12, CLI-13) ------------------------------------------

fn key_count(obj: &Value, field: &str) -> usize {
    obj.get(field).and_then(Value::as_object).map_or(0, |m| m.len())
}

fn secret_row(s: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    vec![name(s).into(), str_at(s, &["type"]).into(), key_count(s, "data").into(), age(s, now).into()]
}

fn configmap_row(cm: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    vec![name(cm).into(), (key_count(cm, "data") + key_count(cm, "binaryData")).into(), age(cm, now).into()]
}

fn serviceaccount_row(sa: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    vec![name(sa).into(), list_at(sa, &["secrets"]).len().into(), age(sa, now).into()]
}

// ---- RBAC -------------------------------------------------------------------------------------

/// A Role or ClusterRole: its name and creation time (`Time.UTC().Format(time.RFC3339)`; Go's
/// zero time when there is none).
fn role_row(role: &Value, _wide: bool, _now: i64) -> Vec<Cell> {
    let created = str_at(role, &["metadata", "creationTimestamp"]);
    let created = if created.is_empty() { "0001-01-01T00:00:00Z" } else { created };
    vec![name(role).into(), created.into()]
}

/// A RoleBinding or ClusterRoleBinding (`printRoleBinding`): ROLE is `Kind/name`, then the
/// subjects by kind (`rbac.SubjectsStrings`: a service account as `namespace/name`), joined by
/// ", ".
fn role_binding_row(b: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let role = format!("{}/{}", str_at(b, &["roleRef", "kind"]), str_at(b, &["roleRef", "name"]));
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in list_at(b, &["subjects"]) {
        let subject_name = str_at(s, &["name"]).to_string();
        match str_at(s, &["kind"]) {
            "User" => users.push(subject_name),
            "Group" => groups.push(subject_name),
            "ServiceAccount" => sas.push(format!("{}/{subject_name}", str_at(s, &["namespace"]))),
            _ => {}
        }
    }
    [name(b), role, age(b, now), users.join(", "), groups.join(", "), sas.join(", ")].map(Cell::from).into()
}

// ---- Ingress, IngressClass (CLI-15) --------------------------------------------------------------

fn ingress_row(ing: &Value, wide: bool, now: i64) -> Vec<Cell> {
    let class = or_none(str_at(ing, &["spec", "ingressClassName"]));
    // kubectl's formatHosts: the first three hosts (rules without one skipped), and once three
    // are listed, any further rule counts as "more" (by the number of rules, not of hosts).
    let rules = list_at(ing, &["spec", "rules"]);
    let (mut hosts, mut more) = (Vec::new(), false);
    for rule in rules {
        more |= hosts.len() == 3;
        if !more && !str_at(rule, &["host"]).is_empty() {
            hosts.push(str_at(rule, &["host"]));
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - 3)
    } else {
        hosts.join(",")
    };
    let ports = if list_at(ing, &["spec", "tls"]).is_empty() { "80" } else { "80, 443" };
    [name(ing), class, hosts, load_balancer_addresses(&ing["status"], wide), ports.to_string(), age(ing, now)].map(Cell::from).into()
}

fn ingressclass_row(ic: &Value, _wide: bool, now: i64) -> Vec<Cell> {
    let params = match at(ic, &["spec", "parameters"]) {
        // kubectl appends the group whenever it is set, even empty.
        Some(p) if p.is_object() => match p.get("apiGroup").and_then(Value::as_str) {
            Some(group) => format!("{}.{group}/{}", str_at(p, &["kind"]), str_at(p, &["name"])),
            None => format!("{}/{}", str_at(p, &["kind"]), str_at(p, &["name"])),
        },
        _ => "<none>".to_string(),
    };
    [name(ic), str_at(ic, &["spec", "controller"]).to_string(), params, age(ic, now)].map(Cell::from).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_714_557_613; // 2024-05-01T10:00:13Z

    fn pod(name: &str, ip: &str, node: &str) -> Value {
        json!({
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z",
                         "labels": {"run": "my-nginx", "pod-template-hash": "5b56ccd65f"}},
            "spec": {"nodeName": node, "containers": [{"name": "nginx", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                       "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "nginx", "ready": true, "restartCount": 0,
                                              "state": {"running": {"startedAt": "2024-05-01T10:00:02Z"}}}]}
        })
    }

    #[test]
    fn pods_wide_cli7() {
        let pods = [pod("my-nginx-5b56ccd65f-4vbrb", "10.244.3.4", "node-1"), pod("my-nginx-5b56ccd65f-x9zkq", "10.244.2.5", "node-2")];
        let out = table("Pod", &pods, &TableOptions { wide: true, ..Default::default() }, NOW);
        assert_eq!(
            out,
            "NAME                        READY   STATUS    RESTARTS   AGE   IP           NODE     NOMINATED NODE   READINESS GATES\n\
             my-nginx-5b56ccd65f-4vbrb   1/1     Running   0          13s   10.244.3.4   node-1   <none>           <none>\n\
             my-nginx-5b56ccd65f-x9zkq   1/1     Running   0          13s   10.244.2.5   node-2   <none>           <none>\n"
        );
    }

    fn status_of(status: Value) -> (String, String, String) {
        let mut p = pod("p", "10.244.1.2", "node-1");
        p["status"] = status;
        let row = pod_row(&p, false, NOW);
        (row[1].to_string(), row[2].to_string(), row[3].to_string())
    }

    #[test]
    fn pod_status_derivation() {
        let waiting = |reason: &str| {
            json!({"phase": "Pending", "containerStatuses": [{"name": "nginx", "ready": false, "restartCount": 0,
                   "state": {"waiting": {"reason": reason}}}]})
        };
        assert_eq!(status_of(waiting("ContainerCreating")).1, "ContainerCreating");
        assert_eq!(status_of(waiting("ErrImagePull")).1, "ErrImagePull");
        assert_eq!(status_of(json!({"phase": "Pending"})), ("0/1".into(), "Pending".into(), "0".into()));
        let crash = json!({"phase": "Running", "containerStatuses": [{"name": "nginx", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": "2024-05-01T09:59:32Z"}}}]});
        assert_eq!(status_of(crash), ("0/1".into(), "CrashLoopBackOff".into(), "3 (41s ago)".into()));
        let done = |code: i64, reason: &str| {
            json!({"phase": if code == 0 { "Succeeded" } else { "Failed" }, "containerStatuses": [{"name": "nginx",
                   "ready": false, "restartCount": 0, "state": {"terminated": {"exitCode": code, "reason": reason}}}]})
        };
        assert_eq!(status_of(done(0, "Completed")).1, "Completed");
        assert_eq!(status_of(done(1, "Error")).1, "Error");
        assert_eq!(status_of(done(137, "")).1, "ExitCode:137");

        let mut p = pod("p", "10.244.1.2", "node-1");
        p["metadata"]["deletionTimestamp"] = json!("2024-05-01T10:00:10Z");
        assert_eq!(pod_row(&p, false, NOW)[2], "Terminating");

        let mut p = pod("p", "", "");
        p["spec"]["initContainers"] = json!([{"name": "init"}]);
        p["status"] = json!({"phase": "Pending", "initContainerStatuses": [{"name": "init", "ready": false,
            "restartCount": 0, "state": {"running": {}}}]});
        assert_eq!(pod_row(&p, true, NOW)[2..], ["Init:0/1", "0", "13s", "<none>", "<none>", "<none>", "<none>"]);
    }

    #[test]
    fn services_cli8() {
        let svc = |name: &str, ty: &str, ip: &str, ports: Value| {
            json!({"metadata": {"name": name, "creationTimestamp": "2024-05-01T09:59:52Z"},
                   "spec": {"type": ty, "clusterIP": ip, "clusterIPs": [ip], "ports": ports, "selector": {"run": "my-nginx"}},
                   "status": {"loadBalancer": {}}})
        };
        let mut kubernetes =
            svc("kubernetes", "ClusterIP", "10.96.0.1", json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]));
        kubernetes["metadata"]["creationTimestamp"] = json!("2024-04-26T10:00:00Z");
        let nginx = svc(
            "my-nginx",
            "NodePort",
            "10.96.162.149",
            json!([
            {"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 80, "nodePort": 31704},
            {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443, "nodePort": 32453}]),
        );
        let out = table("Service", &[kubernetes, nginx], &TableOptions::default(), NOW);
        assert_eq!(
            out,
            "NAME         TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)                        AGE\n\
             kubernetes   ClusterIP   10.96.0.1       <none>        443/TCP                        5d\n\
             my-nginx     NodePort    10.96.162.149   <none>        8080:31704/TCP,443:32453/TCP   21s\n"
        );
        let mut lb = svc("lb", "LoadBalancer", "10.96.0.20", json!([{"port": 80, "protocol": "TCP", "nodePort": 30080}]));
        assert_eq!(service_row(&lb, false, NOW)[3], "<pending>");
        lb["status"]["loadBalancer"]["ingress"] = json!([{"ip": "203.0.113.10"}, {"ip": "203.0.113.2"}]);
        assert_eq!(service_row(&lb, false, NOW)[3], "203.0.113.10,...");
        assert_eq!(service_row(&lb, true, NOW)[3], "203.0.113.10,203.0.113.2");
        let headless = svc("h", "ClusterIP", "None", json!([]));
        assert_eq!(service_row(&headless, true, NOW)[2..5], ["None", "<none>", "<none>"]);
    }

    #[test]
    fn ingresses_and_classes_cli15() {
        let rule = |host: &str| json!({"host": host, "http": {"paths": []}});
        let kubia = json!({"metadata": {"name": "kubia", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "spec": {"ingressClassName": "nginx", "rules": [rule("kubia.example.com")], "tls": [{"hosts": ["kubia.example.com"]}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}}});
        let any = json!({"metadata": {"name": "any", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 80}}}}});
        assert_eq!(
            table("Ingress", &[kubia, any], &TableOptions::default(), NOW),
            "NAME    CLASS    HOSTS               ADDRESS        PORTS     AGE\n\
             kubia   nginx    kubia.example.com   203.0.113.10   80, 443   2m\n\
             any     <none>   *                                  80        2m\n"
        );
        // Rules without a host are skipped, and once three hosts are listed the rest are counted.
        let many = json!({"spec": {"rules": [rule("a"), rule(""), rule("b"), rule("c"), rule("d")]}});
        assert_eq!(ingress_row(&many, false, NOW)[2], "a,b,c + 2 more...");
        let few = json!({"spec": {"rules": [rule("a"), rule(""), rule("b"), rule("c")]}});
        assert_eq!(ingress_row(&few, false, NOW)[2], "a,b,c");
        let class = json!({"metadata": {"name": "nginx", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "spec": {"controller": "k8s.io/ingress-nginx"}});
        let with_params = json!({"metadata": {"name": "ext", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "spec": {"controller": "example.com/lb", "parameters": {"apiGroup": "k8s.example.com", "kind": "IngressParameters", "name": "external-lb"}}});
        assert_eq!(
            table("IngressClass", &[class, with_params], &TableOptions::default(), NOW),
            "NAME    CONTROLLER             PARAMETERS                                      AGE\n\
             nginx   k8s.io/ingress-nginx   <none>                                          2m\n\
             ext     example.com/lb         IngressParameters.k8s.example.com/external-lb   2m\n"
        );
    }

    #[test]
    fn endpoints_and_slices_cli9_cli10() {
        let ep = json!({"metadata": {"name": "my-nginx", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "subsets": [{"addresses": [{"ip": "10.244.2.5"}, {"ip": "10.244.3.4"}], "ports": [{"port": 80, "protocol": "TCP"}]}]});
        let none = json!({"metadata": {"name": "empty", "creationTimestamp": "2024-05-01T09:58:13Z"}});
        let not_ready = json!({"metadata": {"name": "nr", "creationTimestamp": "2024-05-01T09:58:13Z"},
            "subsets": [{"notReadyAddresses": [{"ip": "10.244.2.5"}], "ports": [{"port": 80}]}]});
        assert_eq!(
            table("Endpoints", &[ep, none, not_ready], &TableOptions::default(), NOW),
            "NAME       ENDPOINTS                     AGE\nmy-nginx   10.244.2.5:80,10.244.3.4:80   2m\nempty      <none>                        2m\nnr                                       2m\n"
        );
        let many = json!({"subsets": [{"addresses": [{"ip": "a"}, {"ip": "b"}, {"ip": "c"}, {"ip": "d"}], "ports": [{"port": 1}]}]});
        assert_eq!(format_endpoints(&many), "a:1,b:1,c:1 + 1 more...");

        let slice = json!({"metadata": {"name": "my-nginx-7vzhx", "creationTimestamp": "2024-05-01T09:59:52Z"},
            "addressType": "IPv4", "ports": [{"name": "", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.2.5"]}, {"addresses": ["10.244.3.4"], "conditions": {"ready": false}}]});
        assert_eq!(
            table("EndpointSlice", &[slice], &TableOptions::default(), NOW),
            "NAME             ADDRESSTYPE   PORTS   ENDPOINTS               AGE\nmy-nginx-7vzhx   IPv4          80      10.244.2.5,10.244.3.4   21s\n"
        );
        let placeholder = json!({"metadata": {"name": "x"}, "addressType": "IPv4", "endpoints": []});
        assert_eq!(endpointslice_row(&placeholder, false, NOW)[2..4], ["<unset>", "<unset>"]);
    }

    #[test]
    fn nodes_wide_cli11() {
        let node = json!({"metadata": {"name": "node-1", "creationTimestamp": "2024-04-26T10:00:00Z",
                "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}],
                       "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                                    "kernelVersion": "6.8.0", "containerRuntimeVersion": "containerd://1.7.18"}}});
        assert_eq!(
            table("Node", std::slice::from_ref(&node), &TableOptions { wide: true, ..Default::default() }, NOW),
            "NAME     STATUS   ROLES           AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE                         KERNEL-VERSION   CONTAINER-RUNTIME\n\
             node-1   Ready    control-plane   5d    v1.31.0   172.18.0.2    <none>        Debian GNU/Linux 12 (bookworm)   6.8.0            containerd://1.7.18\n"
        );
        let mut cordoned = node;
        cordoned["spec"] = json!({"unschedulable": true});
        cordoned["status"]["conditions"][0]["status"] = json!("Unknown");
        assert_eq!(node_row(&cordoned, false, NOW)[1], "NotReady,SchedulingDisabled");
    }

    /// emu's HOST column (issue 18): a node's `emu.dev/host`, last and with `-o wide` only, in a
    /// table where a node has a host; `<none>` for a node without one among them.
    #[test]
    fn nodes_wide_host_column_over_several_machines() {
        let node = |name: &str, ip: &str, host: &str| {
            let mut n = json!({"metadata": {"name": name, "creationTimestamp": "2024-04-26T10:00:00Z", "labels": {}},
                "status": {"conditions": [{"type": "Ready", "status": "True"}],
                           "addresses": [{"type": "InternalIP", "address": ip}],
                           "nodeInfo": {"kubeletVersion": "v1.31.0", "osImage": "emu", "kernelVersion": "6.8.0", "containerRuntimeVersion": "emu://0.1"}}});
            if !host.is_empty() {
                n["metadata"]["labels"][HOST_LABEL] = json!(host);
            }
            n
        };
        let nodes = [node("node-1", "10.0.0.1", "host-1"), node("node-3", "10.0.0.3", "host-2"), node("solo", "10.0.0.9", "")];
        let wide = TableOptions { wide: true, ..Default::default() };
        assert_eq!(
            table("Node", &nodes, &wide, NOW),
            "NAME     STATUS   ROLES    AGE   VERSION   INTERNAL-IP   EXTERNAL-IP   OS-IMAGE   KERNEL-VERSION   CONTAINER-RUNTIME   HOST\n\
             node-1   Ready    <none>   5d    v1.31.0   10.0.0.1      <none>        emu        6.8.0            emu://0.1           host-1\n\
             node-3   Ready    <none>   5d    v1.31.0   10.0.0.3      <none>        emu        6.8.0            emu://0.1           host-2\n\
             solo     Ready    <none>   5d    v1.31.0   10.0.0.9      <none>        emu        6.8.0            emu://0.1           <none>\n"
        );
        // Never without -o wide.
        assert_eq!(
            table("Node", &nodes, &TableOptions::default(), NOW),
            "NAME     STATUS   ROLES    AGE   VERSION\nnode-1   Ready    <none>   5d    v1.31.0\nnode-3   Ready    <none>   5d    v1.31.0\nsolo     Ready    <none>   5d    v1.31.0\n"
        );
        // No node with a host (an empty label is none): kube-apiserver's columns alone, and a
        // row's extra cell is left out.
        let mut empty = node("node-2", "10.0.0.2", "");
        empty["metadata"]["labels"][HOST_LABEL] = json!("");
        let alone = [nodes[2].clone(), empty];
        assert_eq!(column_definitions("Node", &alone).len(), 10);
        assert!(!table("Node", &alone, &wide, NOW).contains("HOST"));
        assert!(table("Node", &alone, &wide, NOW).lines().all(|l| l.ends_with("emu://0.1") || l.ends_with("CONTAINER-RUNTIME")));
        // The Table's column: a wide one, as kubectl hides it without -o wide.
        let host = *column_definitions("Node", &nodes).last().unwrap();
        assert_eq!((host.name, host.type_, host.format, host.priority), ("Host", "string", "", 1));
        assert_eq!(row_cells("Node", &nodes[0], true, NOW).last().unwrap(), &"host-1");
        assert_eq!(row_cells("Pod", &pod("p", "10.244.1.2", "node-1"), true, NOW).len(), column_definitions("Pod", &[]).len());
    }

    #[test]
    fn deployments_and_replicasets_cli14() {
        let d = json!({"metadata": {"name": "my-nginx", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"run": "my-nginx"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2}});
        assert_eq!(
            table("Deployment", std::slice::from_ref(&d), &TableOptions { wide: true, kind_prefix: true, ..Default::default() }, NOW),
            "NAME                       READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES   SELECTOR\n\
             deployment.apps/my-nginx   2/2     2            2           13s   nginx        nginx    run=my-nginx\n"
        );
        // A ReplicaSet's counts are integer cells, as kube-apiserver types them.
        assert_eq!(
            row_cells("ReplicaSet", &d, true, NOW),
            [
                Cell::Text("my-nginx".into()),
                Cell::Integer(2),
                Cell::Integer(2),
                Cell::Integer(2),
                Cell::Text("13s".into()),
                Cell::Text("nginx".into()),
                Cell::Text("nginx".into()),
                Cell::Text("run=my-nginx".into())
            ]
        );
    }

    #[test]
    fn column_definitions_as_kube_apiserver_names_them() {
        let pods: Vec<(&str, i32)> = column_definitions("Pod", &[]).iter().map(|c| (c.name, c.priority)).collect();
        assert_eq!(
            pods,
            [
                ("Name", 0),
                ("Ready", 0),
                ("Status", 0),
                ("Restarts", 0),
                ("Age", 0),
                ("IP", 1),
                ("Node", 1),
                ("Nominated Node", 1),
                ("Readiness Gates", 1)
            ]
        );
        // The name column is the one of format "name", wherever it is; every kind has one.
        for kind in emu_api::kinds::KINDS {
            let columns = column_definitions(kind.kind, &[]);
            assert_eq!(columns.iter().filter(|c| c.format == "name").count(), 1, "{}", kind.kind);
            assert!(
                columns.iter().all(|c| !c.description.is_empty() && matches!(c.type_, "string" | "integer" | "date" | "boolean")),
                "{}",
                kind.kind
            );
        }
        let event = column_definitions("Event", &[]);
        assert_eq!((event[9].name, event[9].format, event[9].priority), ("Name", "name", 1));
        assert_eq!(
            column_definitions("Fault", &[]).iter().map(|c| (c.name, c.type_)).collect::<Vec<_>>(),
            [("Name", "string"), ("Age", "date")]
        );
        // Every row has a cell per column, wide ones included.
        let p = pod_row(&pod("p", "10.244.1.2", "node-1"), false, NOW);
        assert_eq!(p.len(), 9);
        assert_eq!(p[5..], ["10.244.1.2", "node-1", "<none>", "<none>"]);
        let s = json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"a": "", "b": ""}});
        assert_eq!(row_cells("Secret", &s, true, NOW)[2], Cell::Integer(2));
        assert_eq!(serde_json::Value::from(Cell::Integer(2)), json!(2));
    }

    #[test]
    fn decorations_namespace_labels_headers() {
        let p = pod("web", "10.244.1.2", "node-1");
        let opts = TableOptions {
            all_namespaces: true,
            show_labels: true,
            label_columns: vec!["run".into(), "app.kubernetes.io/name".into()],
            ..Default::default()
        };
        assert_eq!(
            table("Pod", std::slice::from_ref(&p), &opts, NOW),
            "NAMESPACE   NAME   READY   STATUS    RESTARTS   AGE   RUN        NAME   LABELS\n\
             default     web    1/1     Running   0          13s   my-nginx          pod-template-hash=5b56ccd65f,run=my-nginx\n"
        );
        let opts = TableOptions { no_headers: true, all_namespaces: true, ..Default::default() };
        let ns = json!({"metadata": {"name": "default", "creationTimestamp": "2024-05-01T10:00:00Z"}, "status": {"phase": "Active"}});
        assert_eq!(table("Namespace", &[ns], &opts, NOW), "default   Active   13s\n");
        assert_eq!(table("Pod", &[], &TableOptions::default(), NOW), "");
    }

    fn event(name: &str, ty: &str, reason: &str, pod: &str, message: &str) -> Value {
        json!({"kind": "Event", "metadata": {"name": name, "namespace": "default"},
               "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": pod, "namespace": "default"},
               "type": ty, "reason": reason, "message": message, "count": 1,
               "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:00:00Z"})
    }

    /// The tutorial's pod stuck on a missing Secret: scheduled 13s ago, FailedMount twice since.
    fn mount_events() -> [Value; 2] {
        let scheduled = event(
            "my-nginx-5b56ccd65f-abcde.17cb6a4f00000000",
            "Normal",
            "Scheduled",
            "my-nginx-5b56ccd65f-abcde",
            "Successfully assigned default/my-nginx-5b56ccd65f-abcde to node-1",
        );
        let mut failed = event(
            "my-nginx-5b56ccd65f-abcde.17cb6a5000000000",
            "Warning",
            "FailedMount",
            "my-nginx-5b56ccd65f-abcde",
            "MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found\n",
        );
        failed["source"] = json!({"component": "kubelet", "host": "node-1"});
        failed["firstTimestamp"] = json!("2024-05-01T10:00:08Z");
        failed["lastTimestamp"] = json!("2024-05-01T10:00:10Z");
        failed["count"] = json!(2);
        let mut scheduled = scheduled;
        scheduled["reportingComponent"] = json!("default-scheduler");
        [scheduled, failed]
    }

    #[test]
    fn events_in_api_order() {
        assert_eq!(
            table("Event", &mount_events(), &TableOptions::default(), NOW),
            "LAST SEEN   TYPE      REASON        OBJECT                          MESSAGE\n\
             13s         Normal    Scheduled     pod/my-nginx-5b56ccd65f-abcde   Successfully assigned default/my-nginx-5b56ccd65f-abcde to node-1\n\
             3s          Warning   FailedMount   pod/my-nginx-5b56ccd65f-abcde   MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found\n"
        );
        let opts = TableOptions { all_namespaces: true, no_headers: true, ..Default::default() };
        assert_eq!(
            table("Event", &mount_events()[1..], &opts, NOW),
            "default   3s    Warning   FailedMount   pod/my-nginx-5b56ccd65f-abcde   MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found\n"
        );
    }

    #[test]
    fn events_wide_interleave_message_and_name_last() {
        let opts = TableOptions { wide: true, kind_prefix: true, ..Default::default() };
        assert_eq!(
            table("Event", &mount_events(), &opts, NOW),
            "LAST SEEN   TYPE      REASON        OBJECT                          SUBOBJECT   SOURCE              MESSAGE                                                                                FIRST SEEN   COUNT   NAME\n\
             13s         Normal    Scheduled     pod/my-nginx-5b56ccd65f-abcde               default-scheduler   Successfully assigned default/my-nginx-5b56ccd65f-abcde to node-1                      13s          1       event/my-nginx-5b56ccd65f-abcde.17cb6a4f00000000\n\
             3s          Warning   FailedMount   pod/my-nginx-5b56ccd65f-abcde               kubelet, node-1     MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found   5s           2       event/my-nginx-5b56ccd65f-abcde.17cb6a5000000000\n"
        );
        // Without -o wide there is no NAME column, so several kinds in one `get` leave the
        // Event rows as they are (kubectl decorates only the name column).
        let opts = TableOptions { kind_prefix: true, ..Default::default() };
        assert_eq!(event_row(&mount_events()[0], false, NOW)[0], "13s");
        assert!(table("Event", &mount_events(), &opts, NOW).starts_with("LAST SEEN   TYPE"));
        assert!(!table("Event", &mount_events(), &opts, NOW).contains("event/"));
    }

    #[test]
    fn events_k8s_io_series_and_unnamed_objects() {
        // An events.k8s.io-style event: eventTime and a series instead of timestamps and count.
        let e = json!({"kind": "Event", "metadata": {"name": "x.1", "namespace": "default"},
            "involvedObject": {"kind": "Node"}, "type": "Normal", "reason": "RegisteredNode",
            "message": "Node node-1 event: Registered Node node-1 in Controller",
            "eventTime": "2024-05-01T10:00:10.500000Z", "reportingComponent": "node-controller",
            "series": {"count": 3, "lastObservedTime": "2024-05-01T10:00:12.000000Z"}});
        assert_eq!(
            event_row(&e, true, NOW),
            [
                "1s",
                "Normal",
                "RegisteredNode",
                "node",
                "",
                "node-controller",
                "Node node-1 event: Registered Node node-1 in Controller",
                "2s",
                "3",
                "x.1"
            ]
        );
        let bare = json!({"kind": "Event", "metadata": {"name": "y"}, "involvedObject": {"kind": "Pod", "name": "p"}});
        assert_eq!(event_row(&bare, true, NOW), ["<unknown>", "", "", "pod/p", "", "", "", "<unknown>", "1", "y"]);
    }

    #[test]
    fn roles_and_bindings() {
        let role = json!({"kind": "ClusterRole", "metadata": {"name": "view", "creationTimestamp": "2024-05-01T10:00:00Z"}});
        let out = table("ClusterRole", &[role], &TableOptions { all_namespaces: true, ..Default::default() }, NOW);
        assert_eq!(out, "NAME   CREATED AT\nview   2024-05-01T10:00:00Z\n");
        let b = json!({"kind": "RoleBinding", "metadata": {"name": "alice-view", "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "User", "name": "bob"}, {"kind": "Group", "name": "dev"},
                {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]});
        assert_eq!(
            table("RoleBinding", std::slice::from_ref(&b), &TableOptions::default(), NOW),
            "NAME         ROLE               AGE\nalice-view   ClusterRole/view   13s\n"
        );
        assert_eq!(
            table("RoleBinding", &[b], &TableOptions { wide: true, ..Default::default() }, NOW),
            "NAME         ROLE               AGE   USERS        GROUPS   SERVICEACCOUNTS\nalice-view   ClusterRole/view   13s   alice, bob   dev      default/default\n"
        );
        assert_eq!(column_definitions("ClusterRoleBinding", &[])[3].description, "Users in the clusterRoleBinding");
    }

    #[test]
    fn secrets_and_configmaps() {
        let s = json!({"metadata": {"name": "nginxsecret", "creationTimestamp": "2024-05-01T09:59:13Z"},
                       "type": "kubernetes.io/tls", "data": {"tls.crt": "x", "tls.key": "y"}});
        assert_eq!(
            table("Secret", &[s], &TableOptions::default(), NOW),
            "NAME          TYPE                DATA   AGE\nnginxsecret   kubernetes.io/tls   2      60s\n"
        );
        let cm = json!({"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "x"}});
        assert_eq!(configmap_row(&cm, false, NOW), ["kube-root-ca.crt", "1", "<unknown>"]);
    }

    /// `kubectl get sa`: SECRETS counts the `secrets` entries (none since 1.24's token requests).
    #[test]
    fn service_accounts() {
        let sa = |name: &str, secrets: Value| json!({"metadata": {"name": name, "creationTimestamp": "2024-05-01T09:59:13Z"}, "secrets": secrets});
        assert_eq!(
            table(
                "ServiceAccount",
                &[sa("default", json!(null)), sa("build-robot", json!([{"name": "a"}, {"name": "b"}]))],
                &TableOptions::default(),
                NOW
            ),
            "NAME          SECRETS   AGE\ndefault       0         60s\nbuild-robot   2         60s\n"
        );
    }

    /// The Gateway API's kinds as kubectl prints them from their CRDs' printer columns.
    #[test]
    fn gateway_api_printer_columns() {
        let meta = |name: &str| json!({"name": name, "namespace": "default", "creationTimestamp": "2024-05-01T10:00:00Z"});
        let class = json!({"kind": "GatewayClass", "metadata": meta("emu"), "spec": {"controllerName": "emu.dev/gateway-controller", "description": "emu's"},
                           "status": {"conditions": [{"type": "Accepted", "status": "True"}]}});
        assert_eq!(
            table("GatewayClass", std::slice::from_ref(&class), &TableOptions::default(), NOW),
            "NAME   CONTROLLER                   ACCEPTED   AGE\nemu    emu.dev/gateway-controller   True       13s\n"
        );
        assert!(table("GatewayClass", &[class], &TableOptions { wide: true, ..Default::default() }, NOW).contains("DESCRIPTION\n"));
        let gw = json!({"kind": "Gateway", "metadata": meta("web"), "spec": {"gatewayClassName": "emu"},
                        "status": {"conditions": [{"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "False"}]}});
        assert_eq!(
            table("Gateway", &[gw], &TableOptions::default(), NOW),
            "NAME   CLASS   ADDRESS   PROGRAMMED   AGE\nweb    emu               False        13s\n"
        );
        let route = json!({"kind": "HTTPRoute", "metadata": meta("kubia"), "spec": {"hostnames": ["kubia.example.com", "a.example.com"]}});
        let bare = json!({"kind": "HTTPRoute", "metadata": meta("any"), "spec": {}});
        assert_eq!(
            table("HTTPRoute", &[route, bare], &TableOptions::default(), NOW),
            "NAME    HOSTNAMES                               AGE\nkubia   [\"kubia.example.com\",\"a.example.com\"]   13s\nany                                             13s\n"
        );
    }
}
