"""The Python client lists pods and watches them (tests/tests/python_client.rs).

kubeconfig in argv[1]. The pod `early` exists already (the test made it). Prints one line per
fact: what a list of the namespace and of all namespaces holds, then each event of a watch begun
after that list; once the watch has shown `early`, the pod `late` is created through the API, and
the watch ends when it sees `late`.
"""

import sys

from kubernetes import client, config, watch

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()

pods = v1.list_namespaced_pod("default")
names = " ".join(sorted(p.metadata.name for p in pods.items))
print("list default:", names, "version:", bool(pods.metadata.resource_version))
selected = v1.list_namespaced_pod("default", label_selector="app=early")
print("list app=early:", " ".join(p.metadata.name for p in selected.items))
every = v1.list_pod_for_all_namespaces()
print("list all namespaces:", " ".join(sorted({p.metadata.namespace for p in every.items})))

late = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "late", "labels": {"app": "late"}},
    "spec": {
        "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}],
    },
}
w = watch.Watch()
created = False
for event in w.stream(v1.list_namespaced_pod, "default", timeout_seconds=60):
    pod = event["object"]
    print("event:", event["type"], pod.metadata.name, flush=True)
    if pod.metadata.name == "early" and not created:
        v1.create_namespaced_pod("default", late)
        created = True
    if pod.metadata.name == "late":
        w.stop()
print("watch ended")
