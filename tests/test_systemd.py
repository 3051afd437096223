"""The systemd unit, systemd/tagwatch.service.

* It keeps the daemon's promises (Type=notify, watchdog, SIGHUP reload, exit 2 not restarted,
  DynamicUser with a StateDirectory): read as text, no tools needed.
* `systemd-analyze verify` finds nothing wrong, and `systemd-analyze security` rates its
  exposure at most 1.5.
* The Python stack (ssl, sqlite3, httpx, apprise, subprocess, DNS, an AF_UNIX datagram as for
  sd_notify) works under the seccomp filters the unit asks for: MemoryDenyWriteExecute=,
  SystemCallFilter= and RestrictAddressFamilies=, rebuilt here as systemd 252 builds them
  (src/shared/seccomp-util.c) with libseccomp, in a child process, since no systemd runs
  services in this sandbox.

A missing systemd-analyze or libseccomp skips, and fails under CI or
TAGWATCH_REQUIRE_INTEGRATION=1.
"""

from __future__ import annotations

import ctypes.util
import errno
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from regharness import integration_required
from sinks import SmtpSink, WebhookSink

from tagwatch.cli import build_parser

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "tagwatch.service"
MAX_EXPOSURE = 1.5

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """{section: {key: [values, in order]}}: systemd keys repeat (SystemCallFilter=,
    LoadCredential=), which configparser would merge or refuse. No line continuations here."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            assert line.endswith("]"), f"line {number}: {raw!r}"
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None and "=" in line, f"line {number}: {raw!r}"
        assert not line.endswith("\\"), f"line {number}: no continuation lines, please"
        key, value = line.split("=", 1)
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit.get(section, {}).get(key, [])
    assert len(values) == 1, f"[{section}] {key}= should be set once, got {values}"
    return values[0]


def require_tool(found: bool, what: str, package: str) -> None:
    if found:
        return
    message = (f"{what} not found: install the Debian package {package} "
               f"(apt-get install {package}, or run ./dev test)")
    if integration_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def systemd_analyze(*args: str) -> subprocess.CompletedProcess[str]:
    require_tool(shutil.which("systemd-analyze") is not None, "systemd-analyze", "systemd")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True,
                          timeout=60, check=False)


# --- the promises, from the text ------------------------------------------------------------


def test_unit_keeps_the_daemons_promises() -> None:
    unit = parse_unit(UNIT.read_text())
    service = "Service"
    assert one(unit, service, "Type") == "notify"
    assert one(unit, service, "NotifyAccess") == "main"
    watchdog = one(unit, service, "WatchdogSec")
    assert re.fullmatch(r"[1-9][0-9]*(s|min)?", watchdog), watchdog
    assert re.fullmatch(r"/bin/kill -(s )?HUP \$MAINPID", one(unit, service, "ExecReload"))
    assert one(unit, service, "Restart") == "on-failure"
    assert "2" in one(unit, service, "RestartPreventExitStatus").split()
    assert "2" not in " ".join(unit[service].get("SuccessExitStatus", [])).split()
    assert one(unit, service, "DynamicUser") == "yes"
    assert one(unit, service, "StateDirectory") == "tagwatch"
    assert one(unit, service, "ConfigurationDirectory") == "tagwatch"
    assert one(unit, service, "UMask") == "0077"
    argv = shlex.split(one(unit, service, "ExecStart"))
    assert argv == ["/usr/bin/tagwatch", "run", "--config", "/etc/tagwatch/config.toml"]
    # Only the network: no PrivateNetwork=/IPAddressDeny=, and the families it needs.
    assert "PrivateNetwork" not in unit[service] and "IPAddressDeny" not in unit[service]
    families = one(unit, service, "RestrictAddressFamilies").split()
    assert sorted(families) == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert one(unit, "Install", "WantedBy") == "multi-user.target"


def test_exec_start_is_a_real_command_line() -> None:
    argv = shlex.split(one(parse_unit(UNIT.read_text()), "Service", "ExecStart"))
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == "/etc/tagwatch/config.toml"


# --- systemd-analyze --------------------------------------------------------------------------


@pytest.mark.integration
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists that ExecStart= exists: point it at this venv's tagwatch script (or
    # /bin/true), keeping the arguments and every other line.
    executable = Path(sys.executable).parent / "tagwatch"
    if not executable.exists():
        executable = Path(shutil.which("tagwatch") or "/bin/true")
    text, count = re.subn(r"(?m)^ExecStart=/usr/bin/tagwatch ", f"ExecStart={executable} ",
                          UNIT.read_text())
    assert count == 1
    unit = tmp_path / UNIT.name
    unit.write_text(text)
    done = systemd_analyze("verify", str(unit))
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", (
        f"systemd-analyze verify (exit {done.returncode}):\n{done.stdout}{done.stderr}")


@pytest.mark.integration
def test_systemd_analyze_security_exposure() -> None:
    done = systemd_analyze("security", "--offline=true", "--no-pager", str(UNIT))
    output = done.stdout + done.stderr
    found = re.search(r"Overall exposure level for tagwatch\.service: (\d+(?:\.\d+)?)", output)
    assert found, f"no exposure level (exit {done.returncode}):\n{output}"
    print(found.group(0))
    assert float(found.group(1)) <= MAX_EXPOSURE, output


# --- the Python stack under the unit's seccomp filters ----------------------------------------

# Runs in a child: seccomp filters cannot be removed. argv[1] is a JSON file with the filters
# to install, argv[2:] apprise URLs to notify. Prints one line per check; exits non-zero on the
# first failure of what tagwatch needs. The callback lines are reports only (see the unit's
# MemoryDenyWriteExecute= comment).
PROBE = r'''
import ctypes, errno, json, mmap, sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ = 4, 7


def SCMP_ACT_ERRNO(e):
    return 0x00050000 | e


class ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                ("datum_a", ctypes.c_uint64), ("datum_b", ctypes.c_uint64)]


lib = ctypes.CDLL(sys.argv[1], use_errno=True)
lib.seccomp_init.restype = ctypes.c_void_p
lib.seccomp_init.argtypes = [ctypes.c_uint32]
lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                       ctypes.c_uint, ctypes.POINTER(ArgCmp)]
lib.seccomp_load.argtypes = [ctypes.c_void_p]


def nr(name):
    return lib.seccomp_syscall_resolve_name(name.encode())


def load(default, rules):
    """rules: (action, syscall, [(arg, op, a, b)]). One filter per call, as systemd does: the
    kernel runs them all and the strictest answer wins."""
    ctx = lib.seccomp_init(default)
    for action, syscall, cmps in rules:
        if nr(syscall) < 0:
            continue  # not on this architecture
        array = (ArgCmp * max(len(cmps), 1))(*[ArgCmp(*c) for c in cmps])
        rc = lib.seccomp_rule_add_array(ctx, action, nr(syscall), len(cmps), array)
        assert rc == 0, (syscall, rc)
    assert lib.seccomp_load(ctx) == 0


spec = json.load(open(sys.argv[2]))
# RestrictAddressFamilies=: socket() of any other family fails with EAFNOSUPPORT.
load(SCMP_ACT_ALLOW, [(SCMP_ACT_ERRNO(errno.EAFNOSUPPORT), "socket", [(0, SCMP_CMP_EQ, af, 0)])
                      for af in range(64) if af not in spec["families"]])
# MemoryDenyWriteExecute=yes.
W, X, SHM_EXEC = mmap.PROT_WRITE, mmap.PROT_EXEC, 0o100000
load(SCMP_ACT_ALLOW, [
    (SCMP_ACT_ERRNO(errno.EPERM), s, [(2, SCMP_CMP_MASKED_EQ, m, m)])
    for s, m in [("mmap", W | X), ("mmap2", W | X), ("mprotect", X), ("pkey_mprotect", X),
                 ("shmat", SHM_EXEC)]
])
# SystemCallFilter=: an allow list, anything else fails with SystemCallErrorNumber=. Last, as
# it forbids seccomp() itself.
load(SCMP_ACT_ERRNO(spec["errno"]), [(SCMP_ACT_ALLOW, s, []) for s in spec["syscalls"]])

try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | W | X)
    sys.exit("filters not in force: a writable and executable mapping was allowed")
except PermissionError:
    pass
import socket
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
    sys.exit("filters not in force: an AF_NETLINK socket was allowed")
except OSError as exc:
    assert exc.errno == errno.EAFNOSUPPORT, exc
import os
try:
    os.sched_setaffinity(0, os.sched_getaffinity(0))  # @resources
    sys.exit("filters not in force: sched_setaffinity() was allowed")
except PermissionError:
    pass
print("filters in force")

import datetime, ipaddress, sqlite3, ssl, subprocess, tempfile, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import apprise, httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import tagwatch.cli
print("imports ok")

tmp = tempfile.mkdtemp()
db = sqlite3.connect(os.path.join(tmp, "t.db"))
assert db.execute("pragma journal_mode=wal").fetchone() == ("wal",)
db.create_function("twice", 1, lambda x: 2 * x)
db.execute("create table t (x)")
db.execute("insert into t values (21)")
db.commit()
assert db.execute("select twice(x) from t").fetchone() == (42,)
print("sqlite3 ok")

for flags in (0, socket.AI_ADDRCONFIG):
    assert socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM, flags=flags)
print("getaddrinfo ok")

notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(os.path.join(tmp, "notify"))
with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
    s.sendto(b"READY=1", os.path.join(tmp, "notify"))
assert notify.recv(64) == b"READY=1"
print("AF_UNIX datagram ok")

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
now = datetime.datetime.now(datetime.timezone.utc)
cert = (
    x509.CertificateBuilder().subject_name(name).issuer_name(name)
    .public_key(key.public_key()).serial_number(1)
    .not_valid_before(now - datetime.timedelta(minutes=1))
    .not_valid_after(now + datetime.timedelta(hours=1))
    .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                   critical=False)
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
certfile, keyfile = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
with open(certfile, "wb") as f:
    f.write(cert.public_bytes(serialization.Encoding.PEM))
with open(keyfile, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Hello)
server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_context.load_cert_chain(certfile, keyfile)
server.socket = server_context.wrap_socket(server.socket, server_side=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
with httpx.Client(verify=ssl.create_default_context(cafile=certfile)) as client:
    assert client.get(f"https://127.0.0.1:{server.server_address[1]}/").text == "hello"
server.shutdown()
print("httpx over TLS ok")

targets = apprise.Apprise()
for url in sys.argv[3:]:
    assert targets.add(url), url
assert targets.notify(title="tagwatch", body="under the unit's filters")
print("apprise ok")

assert subprocess.run(["/bin/true"]).returncode == 0  # as for a docker credential helper
print("subprocess ok")


def report(label, check):
    try:
        check()
        print(label, "ok")
    except Exception as exc:
        print(label, "FAILED:", type(exc).__name__, exc)


def ctypes_callback():
    libc = ctypes.CDLL(None)
    compare = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                               ctypes.POINTER(ctypes.c_int))
    numbers = (ctypes.c_int * 3)(3, 1, 2)
    libc.qsort(numbers, 3, ctypes.sizeof(ctypes.c_int), compare(lambda a, b: a[0] - b[0]))
    assert list(numbers) == [1, 2, 3]


def cffi_callback():
    import cffi
    ffi = cffi.FFI()
    ffi.cdef("void qsort(void *, size_t, size_t, int (*)(const void *, const void *));")
    compare = ffi.callback("int (const void *, const void *)",
                           lambda a, b: ffi.cast("int *", a)[0] - ffi.cast("int *", b)[0])
    numbers = ffi.new("int[]", [3, 1, 2])
    ffi.dlopen(None).qsort(numbers, 3, ffi.sizeof("int"), compare)
    assert list(numbers) == [1, 2, 3]


report("ctypes callback", ctypes_callback)
report("cffi callback", cffi_callback)
'''


def syscall_set(groups: list[str], cache: dict[str, set[str]]) -> set[str]:
    """System call names in SystemCallFilter= entries, @groups expanded as this systemd has
    them (`systemd-analyze syscall-filter`)."""
    names: set[str] = set()
    for entry in groups:
        if not entry.startswith("@"):
            names.add(entry)
            continue
        if entry not in cache:
            done = systemd_analyze("syscall-filter", "--no-pager", entry)
            assert done.returncode == 0, done.stderr
            members = [line.strip() for line in done.stdout.splitlines()[1:]]
            cache[entry] = syscall_set([m for m in members if m and not m.startswith("#")],
                                       cache)
        names |= cache[entry]
    return names


def filters_of(unit: Unit) -> dict[str, object]:
    service = unit["Service"]
    assert one(unit, "Service", "MemoryDenyWriteExecute") == "yes"
    allowed: set[str] = set()
    cache: dict[str, set[str]] = {}
    for value in service["SystemCallFilter"]:
        if value.startswith("~"):
            allowed -= syscall_set(value[1:].split(), cache)
        else:
            allowed |= syscall_set(value.split(), cache)
    assert "execve" in allowed and "mount" not in allowed and "setrlimit" not in allowed
    families = [getattr(socket, af) for af in one(unit, "Service",
                                                  "RestrictAddressFamilies").split()]
    error = one(unit, "Service", "SystemCallErrorNumber")
    return {"syscalls": sorted(allowed), "families": families,
            "errno": getattr(errno, error)}


@pytest.mark.integration
def test_python_stack_runs_under_the_units_seccomp_filters(
    tmp_path: Path, webhook: WebhookSink, smtp: SmtpSink
) -> None:
    libseccomp = ctypes.util.find_library("seccomp")
    require_tool(libseccomp is not None, "libseccomp", "libseccomp2")
    spec = tmp_path / "filters.json"
    spec.write_text(json.dumps(filters_of(parse_unit(UNIT.read_text()))))
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    done = subprocess.run(
        [sys.executable, str(probe), str(libseccomp), str(spec), webhook.url, smtp.url()],
        capture_output=True, text=True, timeout=120, check=False,
    )
    print(done.stdout)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "subprocess ok" in done.stdout
    assert len(webhook.wait_for(1)) == 1 and len(smtp.wait_for(1)) == 1
    # ctypes callbacks (libffi's static trampolines) survive MemoryDenyWriteExecute=; cffi's
    # ffi.callback() does not (it maps its own W+X page): only cryptography, a test extra,
    # uses cffi here, and without callbacks.
    assert "ctypes callback ok" in done.stdout
