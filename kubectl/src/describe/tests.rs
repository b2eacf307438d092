use serde_json::{json, Value};

use super::describe;

const NOW: i64 = 1_714_557_621; // 2024-05-01T10:00:21Z

fn nginx_service() -> Value {
    json!({
        "kind": "Service",
        "metadata": {"name": "my-nginx", "namespace": "default", "uid": "svc-uid", "labels": {"run": "my-nginx"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Service\"}\n"}},
        "spec": {"type": "NodePort", "selector": {"run": "my-nginx"}, "clusterIP": "10.96.162.149",
                 "clusterIPs": ["10.96.162.149"], "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 80, "nodePort": 31704},
                           {"name": "https", "port": 443, "protocol": "TCP", "targetPort": 443, "nodePort": 32453}],
                 "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster"},
        "status": {"loadBalancer": {}}
    })
}

fn nginx_slice() -> Value {
    json!({
        "kind": "EndpointSlice",
        "metadata": {"name": "my-nginx-7vzhx", "namespace": "default", "labels": {"kubernetes.io/service-name": "my-nginx"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "https", "port": 443, "protocol": "TCP"}],
        "endpoints": [{"addresses": ["10.244.3.5"], "conditions": {"ready": true, "serving": true, "terminating": false}},
                      {"addresses": ["10.244.2.9"], "conditions": {"ready": false, "serving": false, "terminating": true}}]
    })
}

#[test]
fn service_matches_cli17() {
    let out = describe("Service", &nginx_service(), &[nginx_slice()], NOW);
    assert_eq!(
        out,
        "Name:                     my-nginx
Namespace:                default
Labels:                   run=my-nginx
Annotations:              <none>
Selector:                 run=my-nginx
Type:                     NodePort
IP Family Policy:         SingleStack
IP Families:              IPv4
IP:                       10.96.162.149
IPs:                      10.96.162.149
Port:                     http  8080/TCP
TargetPort:               80/TCP
NodePort:                 http  31704/TCP
Endpoints:                10.244.3.5:80
Port:                     https  443/TCP
TargetPort:               443/TCP
NodePort:                 https  32453/TCP
Endpoints:                10.244.3.5:443
Session Affinity:         None
External Traffic Policy:  Cluster
Internal Traffic Policy:  Cluster
Events:                   <none>
"
    );
}

#[test]
fn service_endpoints_none_and_empty() {
    let mut svc = nginx_service();
    svc["spec"]["ports"] = json!([{"port": 80, "protocol": "TCP", "targetPort": 80}]);
    svc["spec"]["type"] = json!("ClusterIP");
    let out = describe("Service", &svc, &[], NOW);
    assert!(out.contains("Port:                     <unset>  80/TCP\n"), "{out}");
    assert!(out.contains("Endpoints:                <none>\n"), "{out}");
    let mut slice = nginx_slice();
    slice["ports"] = json!([{"name": "", "port": 80, "protocol": "TCP"}]);
    slice["endpoints"][0]["conditions"]["ready"] = json!(false);
    let out = describe("Service", &svc, &[slice], NOW);
    assert!(out.contains("Endpoints:                \n"), "{out}");
}

fn nginx_pod() -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": "my-nginx-5b56ccd65f-4vbrb", "namespace": "default", "uid": "pod-uid",
                     "creationTimestamp": "2024-05-01T10:00:00Z",
                     "labels": {"run": "my-nginx", "pod-template-hash": "5b56ccd65f"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "my-nginx-5b56ccd65f",
                                          "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true}]},
        "spec": {
            "nodeName": "node-1", "priority": 0, "serviceAccountName": "default",
            "containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "volumeMounts": [{"name": "kube-api-access-x9zkq", "readOnly": true,
                                              "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}],
            "volumes": [{"name": "kube-api-access-x9zkq", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
            "tolerations": [
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running", "hostIP": "172.18.0.3", "podIP": "10.244.3.4", "podIPs": [{"ip": "10.244.3.4"}],
            "startTime": "2024-05-01T10:00:00Z", "qosClass": "BestEffort",
            "conditions": [{"type": "PodReadyToStartContainers", "status": "True"}, {"type": "Initialized", "status": "True"},
                           {"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"},
                           {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "nginx", "containerID": "containerd://abc", "image": "nginx",
                                   "imageID": "docker.io/library/nginx@sha256:123", "ready": true, "restartCount": 0,
                                   "started": true, "state": {"running": {"startedAt": "2024-05-01T10:00:02Z"}}}]
        }
    })
}

#[test]
fn pod_like_kubectl() {
    let event = json!({"kind": "Event", "type": "Normal", "reason": "Scheduled", "message": "Successfully assigned default/my-nginx-5b56ccd65f-4vbrb to node-1",
        "involvedObject": {"kind": "Pod", "name": "my-nginx-5b56ccd65f-4vbrb", "namespace": "default", "uid": "pod-uid"},
        "source": {"component": "default-scheduler"}, "firstTimestamp": "2024-05-01T10:00:00Z", "lastTimestamp": "2024-05-01T10:00:00Z", "count": 1});
    let out = describe("Pod", &nginx_pod(), &[event], NOW);
    assert_eq!(
        out,
        "Name:             my-nginx-5b56ccd65f-4vbrb
Namespace:        default
Priority:         0
Service Account:  default
Node:             node-1/172.18.0.3
Start Time:       Wed, 01 May 2024 10:00:00 +0000
Labels:           pod-template-hash=5b56ccd65f
                  run=my-nginx
Annotations:      <none>
Status:           Running
IP:               10.244.3.4
IPs:
  IP:           10.244.3.4
Controlled By:  ReplicaSet/my-nginx-5b56ccd65f
Containers:
  nginx:
    Container ID:   containerd://abc
    Image:          nginx
    Image ID:       docker.io/library/nginx@sha256:123
    Port:           80/TCP
    Host Port:      0/TCP
    State:          Running
      Started:      Wed, 01 May 2024 10:00:02 +0000
    Ready:          True
    Restart Count:  0
    Environment:    <none>
    Mounts:
      /var/run/secrets/kubernetes.io/serviceaccount from kube-api-access-x9zkq (ro)
Conditions:
  Type                        Status
  PodReadyToStartContainers   True 
  Initialized                 True 
  Ready                       True 
  ContainersReady             True 
  PodScheduled                True 
Volumes:
  kube-api-access-x9zkq:
    Type:                    Projected (a volume that contains injected data from multiple sources)
    TokenExpirationSeconds:  3607
    ConfigMapName:           kube-root-ca.crt
    Optional:                false
    DownwardAPI:             true
QoS Class:                   BestEffort
Node-Selectors:              <none>
Tolerations:                 node.kubernetes.io/not-ready:NoExecute op=Exists for 300s
                             node.kubernetes.io/unreachable:NoExecute op=Exists for 300s
Events:
  Type    Reason     Age   From               Message
  ----    ------     ----  ----               -------
  Normal  Scheduled  21s   default-scheduler  Successfully assigned default/my-nginx-5b56ccd65f-4vbrb to node-1
"
    );
}

#[test]
fn pod_pending_terminated_and_env() {
    let mut pod = nginx_pod();
    pod["spec"]["nodeName"] = json!(null);
    pod["status"] = json!({"phase": "Pending"});
    pod["spec"]["containers"][0]["env"] = json!([
        {"name": "MY_POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}},
        {"name": "MY_POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
        {"name": "GREETING", "value": "hello"}]);
    pod["spec"]["containers"][0]["resources"] = json!({"limits": {"memory": "128Mi", "cpu": "0.5"}, "requests": {"cpu": "250m"}});
    pod["spec"]["containers"][0]["readinessProbe"] = json!({"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "periodSeconds": 5});
    pod["spec"]["containers"][0]["args"] = json!(["-g", "daemon off;"]);
    let out = describe("Pod", &pod, &[], NOW);
    for want in [
        "Node:             <none>\n",
        "Status:           Pending\n",
        "IP:               \n",
        "IPs:              <none>\n",
        "    Args:\n      -g\n      daemon off;\n",
        "    Limits:\n      cpu:     500m\n      memory:  128Mi\n    Requests:\n      cpu:      250m\n",
        "    Readiness:  http-get http://:80/ delay=0s timeout=1s period=5s #success=1 #failure=3\n",
        "      MY_POD_NAME:  my-nginx-5b56ccd65f-4vbrb (v1:metadata.name)\n",
        "      MY_POD_IP:     (v1:status.podIP)\n",
        "      PASSWORD:     <set to the key 'k' in secret 's'>  Optional: false\n",
        "      GREETING:     hello\n",
        "QoS Class:                   Burstable\n",
        "Events:                      <none>\n",
    ] {
        assert!(out.contains(want), "missing {want:?} in\n{out}");
    }
    assert!(!out.contains("Container ID"), "{out}");

    let mut crashed = nginx_pod();
    crashed["status"]["containerStatuses"][0]["state"] = json!({"waiting": {"reason": "CrashLoopBackOff"}});
    crashed["status"]["containerStatuses"][0]["lastState"] = json!({"terminated": {"exitCode": 1, "reason": "Error",
        "startedAt": "2024-05-01T10:00:05Z", "finishedAt": "2024-05-01T10:00:06Z"}});
    let out = describe("Pod", &crashed, &[], NOW);
    assert!(
        out.contains("    State:          Waiting\n      Reason:       CrashLoopBackOff\n    Last State:     Terminated\n      Reason:       Error\n      Exit Code:    1\n      Started:      Wed, 01 May 2024 10:00:05 +0000\n      Finished:     Wed, 01 May 2024 10:00:06 +0000\n"),
        "{out}"
    );
}

fn nginx_deployment() -> Value {
    let template = json!({"metadata": {"labels": {"run": "my-nginx"}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}});
    json!({
        "kind": "Deployment",
        "metadata": {"name": "my-nginx", "namespace": "default", "uid": "d-uid", "creationTimestamp": "2024-05-01T10:00:00Z",
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"run": "my-nginx"}},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                 "template": template},
        "status": {"replicas": 2, "updatedReplicas": 2, "readyReplicas": 2, "availableReplicas": 2,
                   "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                  {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
    })
}

fn replica_set(name: &str, hash: &str, image: &str, replicas: i64, created: &str) -> Value {
    json!({
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created,
                     "ownerReferences": [{"kind": "Deployment", "name": "my-nginx", "uid": "d-uid", "controller": true}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"run": "my-nginx", "pod-template-hash": hash}},
                 "template": {"metadata": {"labels": {"run": "my-nginx", "pod-template-hash": hash}},
                              "spec": {"containers": [{"name": "nginx", "image": image, "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
        "status": {"replicas": replicas}
    })
}

#[test]
fn deployment_like_kubectl() {
    let related = [
        replica_set("my-nginx-6d4cf56db6", "6d4cf56db6", "nginx:1.14", 0, "2024-04-30T10:00:00Z"),
        replica_set("my-nginx-5b56ccd65f", "5b56ccd65f", "nginx", 2, "2024-05-01T10:00:00Z"),
    ];
    let out = describe("Deployment", &nginx_deployment(), &related, NOW);
    assert_eq!(
        out,
        "Name:                   my-nginx
Namespace:              default
CreationTimestamp:      Wed, 01 May 2024 10:00:00 +0000
Labels:                 <none>
Annotations:            deployment.kubernetes.io/revision: 1
Selector:               run=my-nginx
Replicas:               2 desired | 2 updated | 2 total | 2 available | 0 unavailable
StrategyType:           RollingUpdate
MinReadySeconds:        0
RollingUpdateStrategy:  25% max unavailable, 25% max surge
Pod Template:
  Labels:  run=my-nginx
  Containers:
   nginx:
    Image:         nginx
    Port:          80/TCP
    Host Port:     0/TCP
    Environment:   <none>
    Mounts:        <none>
  Volumes:         <none>
  Node-Selectors:  <none>
  Tolerations:     <none>
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
  Progressing    True    NewReplicaSetAvailable
OldReplicaSets:  <none>
NewReplicaSet:   my-nginx-5b56ccd65f (2/2 replicas created)
Events:          <none>
"
    );
}

#[test]
fn node_like_kubectl() {
    let node = json!({
        "kind": "Node",
        "metadata": {"name": "node-1", "uid": "n-uid", "creationTimestamp": "2024-04-26T10:00:00Z",
                     "labels": {"kubernetes.io/hostname": "node-1", "node-role.kubernetes.io/control-plane": ""}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status",
                            "lastHeartbeatTime": "2024-05-01T10:00:00Z", "lastTransitionTime": "2024-04-26T10:00:00Z"}],
            "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}, {"type": "Hostname", "address": "node-1"}],
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "nodeInfo": {"machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6.8.0",
                         "osImage": "Debian GNU/Linux 12 (bookworm)", "operatingSystem": "linux", "architecture": "amd64",
                         "containerRuntimeVersion": "emu://0.1.0", "kubeletVersion": "v1.31.0", "kubeProxyVersion": ""}
        }
    });
    let mut pod = nginx_pod();
    pod["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}});
    let out = describe("Node", &node, &[pod], NOW);
    assert_eq!(
        out,
        "Name:               node-1
Roles:              control-plane
Labels:             kubernetes.io/hostname=node-1
                    node-role.kubernetes.io/control-plane=
Annotations:        <none>
CreationTimestamp:  Fri, 26 Apr 2024 10:00:00 +0000
Taints:             <none>
Unschedulable:      false
Conditions:
  Type    Status  LastHeartbeatTime                 LastTransitionTime                Reason         Message
  ----    ------  -----------------                 ------------------                ------         -------
  Ready   True    Wed, 01 May 2024 10:00:00 +0000   Fri, 26 Apr 2024 10:00:00 +0000   KubeletReady   kubelet is posting ready status
Addresses:
  InternalIP:  172.18.0.2
  Hostname:    node-1
Capacity:
  cpu:     4
  memory:  8Gi
  pods:    110
Allocatable:
  cpu:     4
  memory:  8Gi
  pods:    110
System Info:
  Machine ID:                 m
  System UUID:                s
  Boot ID:                    b
  Kernel Version:             6.8.0
  OS Image:                   Debian GNU/Linux 12 (bookworm)
  Operating System:           linux
  Architecture:               amd64
  Container Runtime Version:  emu://0.1.0
  Kubelet Version:            v1.31.0
  Kube-Proxy Version:         
PodCIDR:                      10.244.1.0/24
PodCIDRs:                     10.244.1.0/24
Non-terminated Pods:          (1 in total)
  Namespace                   Name                         CPU Requests  CPU Limits  Memory Requests  Memory Limits  Age
  ---------                   ----                         ------------  ----------  ---------------  -------------  ---
  default                     my-nginx-5b56ccd65f-4vbrb    100m (2%)     0 (0%)      128Mi (1%)       256Mi (3%)     21s
Allocated resources:
  (Total limits may be over 100 percent, i.e., overcommitted.)
  Resource           Requests    Limits
  --------           --------    ------
  cpu                100m (2%)   0 (0%)
  memory             128Mi (1%)  256Mi (3%)
  ephemeral-storage  0 (0%)      0 (0%)
Events:              <none>
"
    );
}

#[test]
fn secret_shows_sizes_never_values() {
    let secret = json!({"kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "nginxsecret", "namespace": "default"},
        // "secret-cert" (11 bytes), "key" (3), "ab" (2)
        "data": {"tls.key": "a2V5", "tls.crt": "c2VjcmV0LWNlcnQ=", "x": "YWI="}});
    let out = describe("Secret", &secret, &[], NOW);
    assert_eq!(
        out,
        "Name:         nginxsecret\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nType:  kubernetes.io/tls\n\nData\n====\ntls.crt:  11 bytes\ntls.key:  3 bytes\nx:        2 bytes\n"
    );
    assert!(!out.contains("c2Vj") && !out.contains("secret-cert"));
}

#[test]
fn configmap_shows_values_and_binary_sizes() {
    let cm = json!({"kind": "ConfigMap", "metadata": {"name": "nginxconfigmap", "namespace": "default"},
        "data": {"default.conf": "server {\n    listen 80;\n}\n", "a": "x"}, "binaryData": {"logo": "/wA="}});
    assert_eq!(
        describe("ConfigMap", &cm, &[], NOW),
        "Name:         nginxconfigmap\nNamespace:    default\nLabels:       <none>\nAnnotations:  <none>\n\nData\n====\na:\n----\nx\n\ndefault.conf:\n----\nserver {\n    listen 80;\n}\n\n\n\nBinaryData\n====\nlogo: 2 bytes\n\nEvents:  <none>\n"
    );
}

/// What kubelet records for a pod whose Secret volume cannot be mounted: built with
/// `emu_logic::events` as the node agent does, first at 10:00:16, again at 10:00:18.
fn failed_mount_event() -> Value {
    let mut pod = nginx_pod();
    pod["apiVersion"] = json!("v1");
    let mut e = emu_logic::events::new_event(
        &pod,
        emu_logic::events::WARNING,
        "FailedMount",
        "MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found",
        "kubelet",
        "node-1",
        "2024-05-01T10:00:16Z",
        0x17cb_6a4f_3c2d_1e00,
    );
    emu_logic::events::repeat(&mut e, "2024-05-01T10:00:18Z");
    e
}

#[test]
fn pod_shows_repeated_failed_mount() {
    let out = describe("Pod", &nginx_pod(), &[failed_mount_event()], NOW);
    assert!(
        out.ends_with(
            "Events:
  Type     Reason       Age              From     Message
  ----     ------       ----             ----     -------
  Warning  FailedMount  3s (x2 over 5s)  kubelet  MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found
"
        ),
        "{out}"
    );

    // Sorted by last timestamp, columns widened by the longest cell.
    let scheduled = json!({"kind": "Event", "type": "Normal", "reason": "Scheduled",
        "message": "Successfully assigned default/my-nginx-5b56ccd65f-4vbrb to node-1",
        "involvedObject": {"kind": "Pod", "name": "my-nginx-5b56ccd65f-4vbrb", "namespace": "default", "uid": "pod-uid"},
        "source": {"component": "default-scheduler"}, "firstTimestamp": "2024-05-01T10:00:00Z",
        "lastTimestamp": "2024-05-01T10:00:00Z", "count": 1});
    // Another pod's event and an event about an older pod of the same name are not this pod's.
    let mut other_pod = failed_mount_event();
    other_pod["involvedObject"]["name"] = json!("my-nginx-5b56ccd65f-x9zkq");
    let mut old_incarnation = failed_mount_event();
    old_incarnation["involvedObject"]["uid"] = json!("old-uid");
    let related = [failed_mount_event(), other_pod, old_incarnation, scheduled];
    let out = describe("Pod", &nginx_pod(), &related, NOW);
    assert!(
        out.ends_with(
            "Events:
  Type     Reason       Age              From               Message
  ----     ------       ----             ----               -------
  Normal   Scheduled    21s              default-scheduler  Successfully assigned default/my-nginx-5b56ccd65f-4vbrb to node-1
  Warning  FailedMount  3s (x2 over 5s)  kubelet            MountVolume.SetUp failed for volume \"secret-volume\" : secret \"nginxsecret\" not found
"
        ),
        "{out}"
    );
}

#[test]
fn every_describer_but_secrets_shows_events() {
    let event_about = |kind: &str, name: &str, ns: &str, uid: &str| {
        json!({"kind": "Event", "type": "Normal", "reason": "Tested", "message": "m",
               "involvedObject": {"kind": kind, "name": name, "namespace": ns, "uid": uid},
               "source": {"component": "emu"}, "firstTimestamp": "2024-05-01T10:00:20Z",
               "lastTimestamp": "2024-05-01T10:00:20Z", "count": 1})
    };
    let row = "  Normal  Tested  1s    emu   m\n";
    let svc = nginx_service();
    let cm = json!({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "default", "uid": "cm-uid"}});
    let deploy = json!({"kind": "Deployment", "metadata": {"name": "d", "namespace": "default", "uid": "d-uid"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}}, "template": {"spec": {"containers": []}}}});
    for (kind, obj, uid) in [("Service", &svc, "svc-uid"), ("ConfigMap", &cm, "cm-uid"), ("Deployment", &deploy, "d-uid")] {
        let name = obj["metadata"]["name"].as_str().unwrap();
        let out = describe(kind, obj, &[event_about(kind, name, "default", uid)], NOW);
        assert!(out.ends_with(row), "{kind}:\n{out}");
        // The same name in another namespace, or another kind, is someone else.
        let elsewhere = [event_about(kind, name, "other", uid), event_about("Pod", name, "default", "")];
        let out = describe(kind, obj, &elsewhere, NOW);
        assert!(out.contains("Events:") && out.ends_with("<none>\n"), "{kind}:\n{out}");
    }

    // kubectl's Secret describer prints no Events section at all.
    let secret = json!({"kind": "Secret", "type": "Opaque", "metadata": {"name": "s", "namespace": "default", "uid": "s-uid"}});
    let out = describe("Secret", &secret, &[event_about("Secret", "s", "default", "s-uid")], NOW);
    assert!(!out.contains("Events"), "{out}");
}

#[test]
fn node_events_by_uid_or_by_name() {
    // Node events live in `default` (the recorder's namespace for cluster-scoped objects) with
    // an empty involvedObject.namespace; kubelet uses the node name as uid.
    let node = json!({"kind": "Node", "metadata": {"name": "node-1", "uid": "n-uid"}});
    let event = |uid: &str, reason: &str| {
        json!({"kind": "Event", "metadata": {"namespace": "default"}, "type": "Normal", "reason": reason,
               "message": "m", "involvedObject": {"kind": "Node", "name": "node-1", "uid": uid},
               "source": {"component": "kubelet", "host": "node-1"}, "firstTimestamp": "2024-05-01T10:00:20Z",
               "lastTimestamp": "2024-05-01T10:00:20Z", "count": 1})
    };
    let related = [event("node-1", "Starting"), event("n-uid", "RegisteredNode"), event("gone", "Stale")];
    let out = describe("Node", &node, &related, NOW);
    assert!(out.contains("  Normal  Starting"), "{out}");
    assert!(out.contains("  Normal  RegisteredNode"), "{out}");
    assert!(!out.contains("Stale"), "{out}");
}

/// kubectl sorts a role's rules by the generated `PolicyRule.String()`, verbs first: `[get list
/// watch]` before `[get list]` before `[get]`.
#[test]
fn roles_and_bindings_like_kubectl() {
    let role = json!({"kind": "Role", "metadata": {"name": "r", "namespace": "default"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"], "verbs": ["get"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["watch"]}]});
    assert_eq!(
        describe("Role", &role, &[], NOW),
        "Name:         r\nLabels:       <none>\nAnnotations:  <none>\nPolicyRule:\n\
         \x20 Resources               Non-Resource URLs  Resource Names  Verbs\n\
         \x20 ---------               -----------------  --------------  -----\n\
         \x20 deployments.apps        []                 []              [get list watch]\n\
         \x20 deployments.apps/scale  []                 []              [get list]\n\
         \x20 pods                    []                 [web]           [get]\n"
    );
    let binding = json!({"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "default"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "default", "namespace": "default"}]});
    assert_eq!(
        describe("RoleBinding", &binding, &[], NOW),
        "Name:         b\nLabels:       <none>\nAnnotations:  <none>\nRole:\n  Kind:  ClusterRole\n  Name:  view\nSubjects:\n\
         \x20 Kind            Name     Namespace\n  ----            ----     ---------\n\
         \x20 User            alice    \n  ServiceAccount  default  default\n"
    );
}

#[test]
fn service_account_like_kubectl() {
    let sa = json!({"kind": "ServiceAccount", "metadata": {"name": "default", "namespace": "default", "uid": "u1"}});
    assert_eq!(
        describe("ServiceAccount", &sa, &[], NOW),
        "Name:                default\nNamespace:           default\nLabels:              <none>\nAnnotations:         <none>\n\
         Image pull secrets:  <none>\nMountable secrets:   <none>\nTokens:              <none>\nEvents:              <none>\n"
    );
    let robot = json!({"kind": "ServiceAccount", "metadata": {"name": "robot", "namespace": "default", "uid": "u2"},
        "imagePullSecrets": [{"name": "regcred"}], "secrets": [{"name": "robot-token"}, {"name": "gone"}]});
    let token = json!({"kind": "Secret", "metadata": {"name": "robot-token", "namespace": "default",
        "annotations": {"kubernetes.io/service-account.name": "robot", "kubernetes.io/service-account.uid": "u2"}},
        "type": "kubernetes.io/service-account-token"});
    assert_eq!(
        describe("ServiceAccount", &robot, &[token], NOW),
        "Name:                robot\nNamespace:           default\nLabels:              <none>\nAnnotations:         <none>\n\
         Image pull secrets:  regcred\nMountable secrets:   robot-token\n                     gone (not found)\n\
         Tokens:              robot-token\nEvents:              <none>\n"
    );
}
