"""The Python client lists and creates ServiceAccounts and requests a token of one (JSON
TokenRequest); a missing account's token is a 404 (tests/tests/kubectl_serviceaccount.rs).

kubeconfig in argv[1]. Prints what it saw, one fact a line; the token last.
"""

import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()

print("listed:", " ".join(sorted(s.metadata.name for s in v1.list_namespaced_service_account("default").items)))
created = v1.create_namespaced_service_account(
    "default", client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="pyrobot")))
print("created:", created.metadata.name, "uid:", bool(created.metadata.uid))
request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=900))
answer = v1.create_namespaced_service_account_token("pyrobot", "default", request)
lifetime = (answer.status.expiration_timestamp - answer.metadata.creation_timestamp).total_seconds()
print("token:", answer.spec.audiences, answer.spec.expiration_seconds, int(lifetime))
try:
    v1.create_namespaced_service_account_token("nobody", "default", request)
    print("missing: created")
except ApiException as e:
    print("missing:", e.status, e.reason)
print(answer.status.token)
