"""The Python client creates a Service and reads it back; an invalid one is refused
(tests/tests/python_client.rs).

kubeconfig in argv[1]. The Service `web` selects app=web on port 80; `bad` has port 0, which the
API server refuses with a 422 naming the field.
"""

import json
import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()

web = client.V1Service(
    metadata=client.V1ObjectMeta(name="web", labels={"app": "web"}),
    spec=client.V1ServiceSpec(
        selector={"app": "web"},
        ports=[client.V1ServicePort(name="http", port=80, target_port=80)],
    ),
)
created = v1.create_namespaced_service("default", web)
print("created:", created.metadata.name, "uid:", bool(created.metadata.uid))
read = v1.read_namespaced_service("web", "default")
port = read.spec.ports[0]
print("read:", read.metadata.name, read.spec.type, read.spec.cluster_ip,
      port.name, port.protocol, port.port, port.target_port)
names = [s.metadata.name for s in v1.list_namespaced_service("default").items]
print("services:", " ".join(sorted(names)))

bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad"},
       "spec": {"ports": [{"port": 0}]}}
try:
    v1.create_namespaced_service("default", bad)
    print("bad: created")
except ApiException as e:
    status = json.loads(e.body)
    print("bad:", e.status, status["reason"])
    print("bad message:", status["message"])
    for cause in status["details"]["causes"]:
        print("bad cause:", cause["field"], cause["reason"])
