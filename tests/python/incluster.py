"""The Python client inside a pod, configured from the pod itself (tests/tests/python_client.rs):
the API server's address from KUBERNETES_SERVICE_HOST/PORT, the service account's token and the
cluster CA from /var/run/secrets/kubernetes.io/serviceaccount.

Prints the server it found, then lists the pods of its namespace and prints what came: their
names, or the error's status, reason and message (a service account without a role binding may
not list pods).
"""

import json

from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_incluster_config()
print("server:", client.Configuration.get_default_copy().host)
v1 = client.CoreV1Api()
try:
    pods = v1.list_namespaced_pod("default")
    print("listed:", " ".join(sorted(p.metadata.name for p in pods.items)))
except ApiException as e:
    status = json.loads(e.body)
    print("error:", e.status, status["reason"])
    print("message:", status["message"])
