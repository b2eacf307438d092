"""The Python client runs commands in a pod over WebSocket (tests/tests/python_client.rs).

kubeconfig in argv[1]; the pod `early` runs busybox. Prints what each command wrote and its exit
code: stdout alone (the default, output read whole), then with stdin, read as it comes
(`_preload_content=False`): a line for `read`, and `cat` ended by closing stdin (v5's close
message); and over v4.channel.k8s.io, which clients before 36 offered alone (no close
message there: the command reads its line and exits).
"""

import sys

from kubernetes import client, config
from kubernetes.stream import stream

config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
exec_ = v1.connect_get_namespaced_pod_exec

out = stream(
    exec_, "early", "default", command=["sh", "-c", "echo hello from $(hostname)"],
    stdout=True, stderr=True, stdin=False, tty=False,
)
print("stdout:", repr(out))

resp = stream(
    exec_, "early", "default", command=["sh", "-c", "read a; echo got $a; echo to stderr >&2; exit 3"],
    stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False,
)
print("subprotocol:", resp.subprotocol)
resp.write_stdin("python\n")
resp.run_forever(timeout=20)
print("read:", repr(resp.read_stdout()), repr(resp.read_stderr()), "exit:", resp.returncode)

resp = stream(
    exec_, "early", "default", command=["cat"],
    stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False,
)
resp.write_stdin("one\n")
resp.write_stdin("two\n")
resp.close_channel(0)
resp.run_forever(timeout=20)
print("cat:", repr(resp.read_stdout()), "exit:", resp.returncode)

resp = stream(
    exec_, "early", "default", command=["sh", "-c", "read a; echo v4 $a; exit 4"],
    stdin=True, stdout=True, stderr=True, tty=False, _preload_content=False,
    _headers={"sec-websocket-protocol": "v4.channel.k8s.io"},
)
resp.write_stdin("line\n")
resp.run_forever(timeout=20)
print("v4:", resp.subprotocol, repr(resp.read_stdout()), "exit:", resp.returncode)
