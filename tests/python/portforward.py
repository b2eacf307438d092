"""The Python client forwards a port of a pod (tests/tests/python_client.rs).

kubeconfig in argv[1]; the pod `web` runs nginx on port 80. Asks for nginx's page through the
forwarded port and prints its status line, its title and the port's error channel.
"""

import re
import sys

from kubernetes import client, config
from kubernetes.stream import portforward

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()

forward = portforward(v1.connect_get_namespaced_pod_portforward, "web", "default", ports="80")
sock = forward.socket(80)
sock.setblocking(True)
sock.sendall(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
page = b""
while True:
    chunk = sock.recv(4096)
    if not chunk:
        break
    page += chunk
sock.close()
text = page.decode()
print("status:", text.splitlines()[0] if text else "(nothing)")
print("title:", re.search(r"<title>(.*)</title>", text).group(1) if "<title>" in text else "(none)")
print("error:", repr(forward.error(80)))
forward.close()
