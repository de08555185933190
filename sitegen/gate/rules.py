"""The gate's rules: compiled patterns for cheap candidates, then Python checks.

Each rule finds candidates with one compiled regex (skipped outright when a
literal it needs is absent from the text), then validates them: addresses
through :mod:`ipaddress`, JWTs by decoding their header, generic assignments
by the shape and Shannon entropy of the value. The checks are where the
look-alikes benchmark archives are full of (digests, versions, model names,
cell ids) are told apart from real leaks.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# Addresses that are fine to publish: they identify nothing. Documentation
# ranges (RFC 5737, RFC 3849), loopback, and the unspecified addresses: "::"
# and 0.0.0.0/8 ("this network", never routed; what a server "listening on
# 0.0.0.0" prints, and the shape of 0.x.y.z version numbers).
ALLOWED_NETWORKS: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
    ipaddress.ip_network("192.0.2.0/24"),
    ipaddress.ip_network("198.51.100.0/24"),
    ipaddress.ip_network("203.0.113.0/24"),
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("2001:db8::/32"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("::/128"),
)

# Rule names, in the order the documentation lists them.
RULES: tuple[str, ...] = (
    "ipv4",
    "ipv6",
    "user-at-host",
    "home-path",
    "aws-access-key",
    "github-token",
    "openai-key",
    "anthropic-key",
    "huggingface-token",
    "slack-token",
    "stripe-key",
    "service-token",
    "private-key",
    "jwt",
    "generic-secret",
    "invisible-char",
)

# Rules whose finding makes a generic-secret finding on the same text redundant.
CREDENTIAL_RULES = frozenset(
    {
        "aws-access-key",
        "github-token",
        "openai-key",
        "anthropic-key",
        "huggingface-token",
        "slack-token",
        "stripe-key",
        "service-token",
        "private-key",
        "jwt",
    }
)

GENERIC_ENTROPY_BITS = 3.0  # bits per character, for values of 12 characters or more
GENERIC_MIN_LENGTH = 8
TOKEN_ENTROPY_FLOOR = 2.0  # below this a provider-prefixed token is a placeholder (sk-xxxx…)


@dataclass(frozen=True, slots=True)
class Hit:
    """One match in a view: where it starts and ends, and what to report."""

    start: int
    end: int
    rule: str
    matched: str  # the text the fingerprint is taken over
    redacted: str


def shannon_entropy(s: str) -> float:
    """Bits per character of ``s`` taken as a sample of its own characters."""
    n = len(s)
    if n == 0:
        return 0.0
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def redact(secret: str, prefix: str = "") -> str:
    """Keep a non-secret ``prefix`` and at most a quarter (max 4) of the secret."""
    keep = min(4, len(secret) // 4)
    return f"{prefix}{secret[:keep]}…"


# --- addresses -------------------------------------------------------------

# A quad may be glued to letters (``host10.0.0.5``, ``10.0.0.5abc``, a file name
# ``node_10.0.0.5.log``), never to more digits or dotted digits (``1.2.3.4.5``).
_IPV4 = re.compile(r"(?<![0-9])(?<![0-9]\.)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9]|\.[0-9])")
# The cloud host-name form of an address: ip-10-0-0-5, ip-10-0-0-5.ec2.internal.
_IPV4_DASHED = re.compile(
    r"(?<![0-9A-Za-z])ip-([0-9]{1,3})-([0-9]{1,3})-([0-9]{1,3})-([0-9]{1,3})(?![0-9]|-[0-9])",
    re.IGNORECASE,
)
# A software name right before a quad makes it that software's version:
# "cuDNN 9.1.0.70", "CUDA 12.4.1.0", "TensorRT 10.0.1.6".
LIBRARY_NAMES = frozenset(
    {"cuda", "cudnn", "cublas", "cufft", "curand", "cusparse", "cutlass", "nccl", "nvcc",
     "tensorrt", "trt", "rocm", "hip", "miopen", "rccl", "driver", "nvidia", "torch",
     "pytorch", "tensorflow", "tf", "jax", "jaxlib", "triton", "python", "onnx",
     "onnxruntime", "openvino", "mkl", "onednn", "oneapi", "vllm", "transformers", "numpy",
     "protobuf", "gcc", "clang", "llvm", "kernel", "linux", "firmware", "bios", "vbios",
     "ubuntu", "debian", "windows", "macos", "xcode", "build", "mlx", "metal", "vulkan",
     "opencl", "sycl", "llama.cpp", "ollama", "sglang", "openmpi", "ucx", "libtorch"}
)  # fmt: skip
_NAME_BEFORE = re.compile(r"([A-Za-z][A-Za-z0-9.+_-]*)[ \t]*(?:[:=]|version|v)?[ \t]*[\"']?\Z")
_IPV6 = re.compile(
    r"(?<![\w:.%])"
    r"(?:[0-9A-Fa-f]{0,4}:){2,8}"
    r"(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![\w.])|[0-9A-Fa-f]{0,4})"
    r"(?:%[0-9A-Za-z._~-]+)?"
    r"(?![\w:])"
)
# Text right before a dotted quad that makes it a version, not an address:
# "torch==2.1.0.1", "version: 2.1.0.1", '"engine_version": "2.1.0.1"'. Blanks,
# never a line break, and \Z, not $ (which also matches before a final newline):
# every rule reads within one line (a private key's body aside), which is what
# lets a large file be scanned in cached chunks.
_VERSION_BEFORE = re.compile(
    r"(?:(?:[=!<>~]=|\^|~)[ \t]*"  # a pin: ==, >=, ~=, ^, ~
    r"|(?:version|\bver|release|revision|\brev|section|§)s?_*"
    r"[\"']?[ \t]*[:=]?[ \t]*[\"']?[ \t]*)\Z",
    re.IGNORECASE,
)
_SLICE_SHAPE = re.compile(r"[0-9]*::?[0-9]*:?[0-9]*")
# "be::", "add::": a hex word before a reST "::" or a C++ scope. As addresses
# they would sit in IETF-reserved, unassigned space, so nothing real is lost.
_HEX_WORD_SCOPE = re.compile(r"[A-Fa-f]{1,4}::")


_ALLOWED_RANGES = tuple(
    (net.version, int(net.network_address), int(net.broadcast_address)) for net in ALLOWED_NETWORKS
)


def _address_allowed(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    value, version = int(addr), addr.version
    if any(v == version and lo <= value <= hi for v, lo, hi in _ALLOWED_RANGES):
        return True
    mapped = getattr(addr, "ipv4_mapped", None)
    return mapped is not None and _address_allowed(mapped)


def _anchored(
    hint: re.Pattern[str],
    full: re.Pattern[str],
    text: str,
    back: frozenset[str],
    max_back: int,
    run: frozenset[str] | None = None,
) -> Iterator[re.Match[str]]:
    """Full matches found from cheap ``hint`` hits.

    The hint is a literal-led pattern the regex engine scans for quickly; from
    each hit we step back over characters the candidate may start with, then
    try the full pattern (whose lookbehind checks the boundary) right there.
    When a candidate can only start where a ``run`` of its characters starts,
    a failed try skips the rest of that run (``::::…`` costs one try, not one
    per colon).
    """
    pos = 0
    n = len(text)
    while (h := hint.search(text, pos)) is not None:
        s = h.start()
        floor = max(0, s - max_back)
        while s > floor and text[s - 1] in back:
            s -= 1
        m = full.match(text, s)
        if m is not None and m.end() > h.start():
            yield m
            pos = m.end()
        elif run is not None:
            pos = h.start() + 1
            while pos < n and text[pos] in run:
                pos += 1
        else:
            pos = h.start() + 1


_DIGITS = frozenset("0123456789")
_HEX_COLON = frozenset("0123456789abcdefABCDEF:")
_IPV4_RUN = frozenset("0123456789.")
_IPV6_RUN = frozenset("0123456789abcdefABCDEF:.")
_IPV4_HINT = re.compile(r"\.[0-9]{1,3}\.[0-9]{1,3}\.")
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")


def _ipv4(parts: list[str]) -> ipaddress.IPv4Address | None:
    """The address of four decimal parts; leading zeros (``010.000.000.005``) are
    read as decimal, as the text reads to a person (``ipaddress`` refuses them)."""
    values = [int(p) for p in parts]
    if any(v > 255 for v in values):
        return None
    return ipaddress.IPv4Address(".".join(map(str, values)))


def _after_library(text: str, s: int) -> bool:
    """True when a software name stands right before offset ``s`` (its version follows)."""
    m = _NAME_BEFORE.search(text, max(0, s - 40), s)
    return m is not None and m.group(1).lower().rstrip("-_") in LIBRARY_NAMES


def _may_hold_dashed(text: str) -> bool:
    """False only where ``_IPV4_DASHED`` cannot match: its case-blind ``ip-`` also
    matches ``İ`` and ``ı``, which lower to ``i\u0307`` and ``ı``. Scanning the
    pattern itself cost about 1 ms per 35 KB ledger, the lowered copy a twentieth."""
    low = text.lower()
    return "ip-" in low or "\u0131p-" in low or "\u0307p-" in low


def find_ipv4(text: str) -> Iterator[Hit]:
    """Dotted quads (and ``ip-a-b-c-d`` host names) that are real, non-documentation
    addresses and not versions."""
    for m in _anchored(_IPV4_HINT, _IPV4, text, _DIGITS, 3, _IPV4_RUN):
        s, e = m.span()
        cand = m.group()
        addr = _ipv4(cand.split("."))
        if addr is None or _address_allowed(addr):
            continue
        if _VERSION_BEFORE.search(text, max(0, s - 40), s) or _after_library(text, s):
            continue
        before = text[s - 1] if s else ""
        # "v1.2.3.4", "b1.2.3.4": a version marker, not a host name
        if before in "vVbB" and before and (s < 2 or not text[s - 2].isalnum()):
            continue
        glued = (
            before.isalnum()
            or before == "_"
            or (before == "-" and s >= 2 and text[s - 2].isalnum())
            or (e < len(text) and text[e].isalnum())
        )
        # A quad glued to a word (host10.0.0.5, 10.0.0.5abc, node-10.0.0.5.log)
        # is flagged when it is a private or other non-public address; a public
        # one glued so (torch-2.1.0.1-cp311.whl, cuda12.4.1.0, 1.2.3.4rc1) is
        # far likelier a version.
        if glued and addr.is_global:
            continue
        yield Hit(s, e, "ipv4", cand, redact(cand))
    if not _may_hold_dashed(text):
        return
    for m in _IPV4_DASHED.finditer(text):
        addr = _ipv4(list(m.groups()))
        if addr is None or _address_allowed(addr):
            continue
        cand = m.group()
        yield Hit(m.start(), m.end(), "ipv4", cand, redact(cand[3:], cand[:3]))


def _in_slice(text: str, s: int, cand: str) -> bool:
    """``a[1::2]``, ``x[::3]``: Python slices, not IPv6 addresses."""
    if not _SLICE_SHAPE.fullmatch(cand):
        return False
    window = max(0, s - 200)  # a subscript opens close by; keeps this O(1) per candidate
    line_start = text.rfind("\n", window, s) + 1 or window
    before = text[line_start:s]
    opened = before.rfind("[")
    if opened < 0 or before.rfind("]") > opened:
        return False
    # "[" right after "//" or "@" opens a URL host, not a subscript
    return not before[:opened].endswith(("//", "@"))


def find_ipv6(text: str) -> Iterator[Hit]:
    """Colon-hex candidates that :mod:`ipaddress` accepts, minus allowed networks."""
    if ":" not in text:
        return
    for m in _anchored(_IPV6_HINT, _IPV6, text, _HEX_COLON, 40, _IPV6_RUN):
        s, e = m.span()
        cand = m.group()
        try:
            addr = ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        if _address_allowed(addr) or _HEX_WORD_SCOPE.fullmatch(cand) or _in_slice(text, s, cand):
            continue
        yield Hit(s, e, "ipv6", cand, redact(cand))


# --- user@host ---------------------------------------------------------------

_URL_USERINFO = re.compile(
    r"://(?P<userinfo>[^\s/?#@\"'<>\[\]]*)@"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*)"
)
_AT = re.compile(
    r"(?<![A-Za-z0-9._%+/:@-])(?P<user>[A-Za-z0-9_][A-Za-z0-9._-]{0,63})@"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*)"
)
_AT_HINT = re.compile("@")
_USER_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_SSH_COMMAND = re.compile(r"\b(?:ssh|scp|sftp|rsync|mosh|autossh|sshfs|ssh-copy-id)\b")
_PLACEHOLDER_CREDS = frozenset(
    {"", "user", "username", "usr", "login", "pass", "password", "passwd", "pw", "pwd",
     "secret", "token", "xxx", "xxxx", "***", "****", "name", "me", "you", "example",
     "userinfo", "someone"}
)  # fmt: skip
_PLACEHOLDER_HOSTS = frozenset(
    {"host", "hostname", "server", "remote", "machine", "remotehost", "remote-host",
     "example.com", "example.org", "example.net", "your-server", "yourserver"}
)  # fmt: skip
_DIGEST_HOSTS = frozenset(
    {"sha1", "sha224", "sha256", "sha384", "sha512", "md5", "blake2b", "blake3"}
)
_FORGE_USERS = frozenset({"git"})


def _is_placeholder_cred(part: str) -> bool:
    p = part.strip().lower()
    return (
        p in _PLACEHOLDER_CREDS
        or (p.startswith("<") and p.endswith(">"))
        or (p.startswith("{") and p.endswith("}"))
        or p.startswith("$")
        or p.startswith("%")
    )


def _hostish(host: str) -> bool:
    if host.startswith("["):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return any(ch.isalpha() for ch in host)


def _redact_user_host(user: str, host: str) -> str:
    return f"{redact(user)}@{redact(host)}"


# Single-word "hosts" after "@" that are package tags or versions (npm, pip, nix).
_PACKAGE_TAGS = frozenset(
    {"latest", "next", "stable", "beta", "alpha", "canary", "nightly", "rc", "lts", "dev",
     "main", "master", "head", "edge", "experimental", "insiders", "preview", "release",
     "local", "localhost", "none", "null", "undefined", "workspace", "npm", "file", "link"}
)  # fmt: skip
_VERSIONISH = re.compile(r"v?[0-9][0-9A-Za-z.+-]*|[\^~<>=].*|x86_64|aarch64|arm64|amd64")


def _bare_login(host: str, after: str) -> bool:
    """``user@host`` with no ssh word or prompt shape around it that still names a
    login: the host is an address, or a single name with no domain (a mailbox
    always has one). ``worker@node3: msg``, a log label, is not one."""
    if host.startswith("["):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if "." in host or not any(ch.isalpha() for ch in host) or after[:1] == ":":
        return False
    low = host.lower()
    return low not in _PACKAGE_TAGS and not _VERSIONISH.fullmatch(low)


def find_user_at_host(text: str) -> Iterator[Hit]:
    """ssh/scp targets, shell prompts and URLs carrying credentials.

    A plain e-mail address is not a finding: it is contact information a
    publisher puts in citation metadata on purpose. Only the shapes that say
    "log in here" are: ``ssh bob@host``, ``bob@host:path``, ``[bob@host ~]$``,
    ``scheme://user[:password]@host``.
    """
    if "@" not in text:
        return
    if "://" in text:
        for m in _URL_USERINFO.finditer(text):
            info, host = m.group("userinfo"), m.group("host")
            user, _, password = info.partition(":")
            if user.lower() in _FORGE_USERS and not password:
                continue
            if _is_placeholder_cred(user) and _is_placeholder_cred(password):
                continue
            s = m.start("userinfo")
            matched = f"{info}@{host}"
            yield Hit(s, m.end(), "user-at-host", matched, _redact_user_host(info, host))
    ssh_at: dict[int, int | None] = {}
    line_start = scanned_to = 0
    for m in _anchored(_AT_HINT, _AT, text, _USER_CHARS, 64):
        user, host = m.group("user"), m.group("host")
        s, e = m.span()
        if user.lower() in _FORGE_USERS or host.lower() in _DIGEST_HOSTS or not _hostish(host):
            continue
        if _is_placeholder_cred(user) and host.lower() in _PLACEHOLDER_HOSTS:
            continue  # documentation: user@host:path, you@server
        after = text[e : e + 3]
        if after == "://":  # PEP 508 direct reference: pkg@https://...
            continue
        shaped = False
        if after[:1] == ":" and len(after) > 1 and (after[1].isalnum() or after[1] in "/~._$"):
            shaped = True  # scp target or shell prompt: bob@host:~/x, bob@host:/srv
        elif s > 0 and text[s - 1] == "[" and text[e : e + 1] in (" ", "\t", "]"):
            shaped = True  # [bob@host ~]$
        else:
            nl = text.rfind("\n", scanned_to, s)  # candidates come in order: look back only so far
            if nl >= 0:
                line_start = nl + 1
            scanned_to = s
            standalone = s == line_start or text[s - 1] in " \t\"'="
            if standalone:
                if line_start not in ssh_at:  # first ssh/scp word of the line, once per line
                    line_end = text.find("\n", line_start)
                    cmd = _SSH_COMMAND.search(
                        text, line_start, len(text) if line_end < 0 else line_end
                    )
                    ssh_at[line_start] = cmd.start() if cmd else None
                ssh_start = ssh_at[line_start]
                shaped = ssh_start is not None and ssh_start < s
        if not shaped and _bare_login(host, text[e : e + 2]):
            shaped = True  # root@build-box, alice@10.0.0.5: a login, not a mailbox
        if shaped:
            yield Hit(s, e, "user-at-host", m.group(), _redact_user_host(user, host))


# --- home directories ----------------------------------------------------------

_UNIX_HOME = re.compile(
    r"/(?P<root>home|Users)/(?P<name>[A-Za-z0-9_](?:[A-Za-z0-9._-]*[A-Za-z0-9_])?)"
)
_UNIX_HOME_NOT_AFTER = re.compile(r"[\w.-]")
_WINDOWS_HOME = re.compile(
    r":(?P<sep>\\\\|\\|/)(?i:users)(?:\\\\|\\|/)(?P<name>[^\\/\s\"'<>|:*?]+)"
)
_TILDE_HOME = re.compile(r"~(?P<name>[A-Za-z_][A-Za-z0-9._-]{1,31})")  # 2+ characters: not ~n/2
_TILDE_NOT_AFTER = re.compile(r"[\w~/\\.$-]")
_CD_BEFORE = re.compile(r"\bcd[ \t]+\Z")
# Generic or shared accounts: a path under them names no person.
GENERIC_HOME_NAMES = frozenset(
    {"user", "username", "runner", "yourname", "your_name", "your-name", "name", "example",
     "shared", "public", "default", "default user", "all users", "guest", "me", "you",
     "someone", "foo", "bar", "x", "anon", "anonymous"}
)  # fmt: skip


def _preceded_by(pattern: re.Pattern[str], text: str, s: int) -> bool:
    return s > 0 and pattern.match(text, s - 1) is not None


def find_home_paths(text: str) -> Iterator[Hit]:
    """``/home/<name>``, ``/Users/<name>``, ``C:\\Users\\<name>``, ``~name/``."""
    if "/home/" in text or "/Users/" in text:
        for m in _UNIX_HOME.finditer(text):
            name = m.group("name")
            # /home/ inside a URL path or a longer path (/srv/home/) is not a home folder
            if (
                _preceded_by(_UNIX_HOME_NOT_AFTER, text, m.start())
                or name.lower() in GENERIC_HOME_NAMES
            ):
                continue
            prefix = f"/{m.group('root')}/"
            yield Hit(m.start(), m.end(), "home-path", m.group(), redact(name, prefix))
    if "sers" in text or "SERS" in text:
        for m in _WINDOWS_HOME.finditer(text):
            s = m.start() - 1  # the drive letter
            if s < 0 or not ("A" <= text[s].upper() <= "Z") or (s > 0 and text[s - 1].isalnum()):
                continue
            name = m.group("name")
            if name.lower() in GENERIC_HOME_NAMES:
                continue
            root = text[s : m.start("name")]
            yield Hit(s, m.end(), "home-path", text[s : m.end()], redact(name, root))
    if "~" in text:
        for m in _TILDE_HOME.finditer(text):
            name = m.group("name")
            s, e = m.span()
            if _preceded_by(_TILDE_NOT_AFTER, text, s) or name.lower() in GENERIC_HOME_NAMES:
                continue
            nxt = text[e : e + 1]
            prev = text[s - 1 : s]
            if nxt == "/":
                pass  # ~bob/.cache
            elif prev in ("'", '"') and nxt == prev:
                pass  # a whole quoted value: "~bob"
            elif nxt in ("", " ", "\t", "\n", "\r", ";") and _CD_BEFORE.search(
                text, max(0, s - 16), s
            ):
                pass  # cd ~bob
            else:
                continue  # "~word" alone is "approximately", or bitwise not in code
            yield Hit(s, e, "home-path", m.group(), redact(name, "~"))


# --- provider tokens ---------------------------------------------------------

# One pass finds every provider prefix; each hit is then matched in full.
_TOKEN_PREFIX = re.compile(  # factored like a trie: ~5x faster to scan than a flat alternation
    r"A(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])|g(?:h[pousr]_|ithub_pat_)|sk[-_]|hf_|api_org_"
    r"|x(?:ox[abposre]-|app-)|https://hooks\.slack\.com/|rk_|whsec_"
    r"|gl(?:pat|dt|rt|ptt|oas)-|npm_|pypi-AgE|SG\."
)
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_TOKEN_CHARS = _ALNUM | {"_", "-"}


@dataclass(frozen=True)
class _TokenRule:
    rule: str
    pattern: re.Pattern[str]  # groups: p (prefix, not secret) and b (body)
    boundary: frozenset[str]  # characters that may not touch the token on either side
    extra: Callable[[str], bool] | None = None  # more validation of the full match


_OPENAI_SCOPED = ("sk-proj-", "sk-svcacct-", "sk-admin-", "sk-None-")


def _not_example(token: str) -> bool:
    return "EXAMPLE" not in token.upper()


_TOKEN_RULES: tuple[_TokenRule, ...] = (
    _TokenRule(
        "aws-access-key",
        re.compile(r"(?P<p>AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])(?P<b>[A-Z0-9]{16})"),
        _ALNUM,
        _not_example,
    ),
    _TokenRule(
        "github-token",
        re.compile(r"(?P<p>gh[pousr]_|github_pat_)(?P<b>[A-Za-z0-9_]{36,255})"),
        _TOKEN_CHARS,
        # classic tokens: 36+ letters and digits; fine-grained: github_pat_ and 50+
        lambda t: len(t) >= 61 if t.startswith("github_pat_") else "_" not in t[4:],
    ),
    _TokenRule(
        "anthropic-key", re.compile(r"(?P<p>sk-ant-)(?P<b>[A-Za-z0-9_-]{32,})"), _TOKEN_CHARS
    ),
    _TokenRule(
        "openai-key",
        re.compile(r"(?P<p>sk-(?:proj|svcacct|admin|None)-|sk-(?!ant-))(?P<b>[A-Za-z0-9_-]{20,})"),
        _TOKEN_CHARS,
        # the legacy form (sk- and 32+ letters and digits) has no dashes in its body
        lambda t: t.startswith(_OPENAI_SCOPED) or (len(t) >= 35 and t[3:].isalnum()),
    ),
    _TokenRule(
        "huggingface-token", re.compile(r"(?P<p>hf_|api_org_)(?P<b>[A-Za-z0-9]{30,})"), _TOKEN_CHARS
    ),
    _TokenRule(
        "slack-token",
        re.compile(
            r"(?P<p>xox[abposre]-|xapp-[0-9]-|https://hooks\.slack\.com/(?:services|workflows)/)"
            r"(?P<b>[A-Za-z0-9_/-]{10,})"
        ),
        _TOKEN_CHARS,
    ),
    _TokenRule(
        "stripe-key",
        re.compile(r"(?P<p>(?:sk|rk)_(?:live|test)_|whsec_)(?P<b>[A-Za-z0-9]{16,})"),
        _TOKEN_CHARS,
    ),
)


_TOKEN_RULES += (
    # Other services whose tokens carry a fixed prefix (rules detect-secrets has
    # and the gate lacked): GitLab personal, deploy, runner, trigger and OAuth
    # tokens, npm access tokens, PyPI upload tokens (a macaroon for pypi.org),
    # SendGrid API keys (SG.<22>.<43>).
    _TokenRule(
        "service-token",
        re.compile(
            r"(?P<p>gl(?:pat|dt|rt|ptt|oas)-|npm_|pypi-AgE|SG\.)"
            r"(?P<b>(?<=SG\.)[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}"
            r"|(?<=pypi-AgE)[A-Za-z0-9_-]{50,}"
            r"|(?<=npm_)[A-Za-z0-9]{36}"
            r"|(?<=-)[A-Za-z0-9_-]{20,})"
        ),
        _TOKEN_CHARS | {"."},
    ),
)


def find_provider_tokens(text: str) -> Iterator[Hit]:
    """Provider-prefixed credentials; a body of one or two repeated characters is a placeholder."""
    pos = 0
    while (h := _TOKEN_PREFIX.search(text, pos)) is not None:
        s = h.start()
        pos = s + 1
        if s > 0 and text[s - 1] in _ALNUM:
            continue  # inside a longer word: "desk-", "pathf_"
        for tr in _TOKEN_RULES:
            if s > 0 and text[s - 1] in tr.boundary:
                continue  # checked first: "sk-sk-sk-..." must not cost a match per prefix
            m = tr.pattern.match(text, s)
            if m is None:
                continue
            e = m.end()
            if e < len(text) and text[e] in tr.boundary:
                continue
            token, body = m.group(), m.group("b")
            if shannon_entropy(body) < TOKEN_ENTROPY_FLOOR:
                continue
            if tr.extra is not None and not tr.extra(token):
                continue
            yield Hit(s, e, tr.rule, token, redact(body, m.group("p")))
            pos = e
            break


_PRIVATE_KEY = re.compile(r"-----BEGIN (?P<kind>(?:[A-Z0-9]+ )*)PRIVATE KEY(?P<block> BLOCK)?-----")
_KEY_BODY = re.compile(r"(?:[A-Za-z0-9+/=:,\-\s]|\\[nr])*")


def find_private_keys(text: str) -> Iterator[Hit]:
    """PEM/OpenSSH/PGP private key blocks; the fingerprint covers the whole block."""
    if "PRIVATE KEY" not in text:
        return
    for m in _PRIVATE_KEY.finditer(text):
        header = m.group()
        end_marker = f"-----END {m.group('kind')}PRIVATE KEY{m.group('block') or ''}-----"
        end = text.find(end_marker, m.end(), m.end() + 65536)
        if end >= 0:
            stop = end + len(end_marker)
        else:
            body = _KEY_BODY.match(text, m.end(), m.end() + 8192)
            stop = body.end() if body else m.end()
        yield Hit(m.start(), stop, "private-key", text[m.start() : stop], f"{header}…")


# possessive quantifiers: a segment never gives characters back, so a long
# base64 blob costs one pass instead of one per "eyJ" inside it
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}+\.eyJ[A-Za-z0-9_-]{5,}+\.[A-Za-z0-9_-]*+")
_JWT_HINT = re.compile("eyJ")


def _b64json(segment: str) -> object:
    padded = segment + "=" * (-len(segment) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def find_jwts(text: str) -> Iterator[Hit]:
    """Three base64url segments whose header decodes to a JSON object naming ``alg`` or ``typ``."""
    if "eyJ" not in text:
        return
    for h in _JWT_HINT.finditer(text):
        s = h.start()
        if s > 0 and text[s - 1] in _TOKEN_CHARS:
            continue
        m = _JWT.match(text, s)
        if m is None:
            continue
        e = m.end()
        header_b64, payload_b64, _sig = m.group().split(".")
        header = _b64json(header_b64)
        if not isinstance(header, dict) or not ({"alg", "typ"} & header.keys()):
            continue
        if not isinstance(_b64json(payload_b64), dict):
            continue
        yield Hit(s, e, "jwt", m.group(), redact(m.group()))


# --- generic key = value -------------------------------------------------------


def _case_variants(*words: str) -> str:
    """``key|KEY|Key`` ...: three spellings, case-sensitively, scan ~8x faster than IGNORECASE."""
    return "|".join(v for w in words for v in (w, w.upper(), w[0].upper() + w[1:]))


_ASSIGNMENT = re.compile(
    r"(?P<kw>"
    + _case_variants("key", "token", "secret", "password", "passwd", "pwd", "passphrase")
    + "|"
    + _case_variants("credentials", "credential")
    + r")[\"']?[ \t]*(?::=|=>|=|:)[ \t]*"
    r"(?P<val>\"[^\"\n]{0,512}\"|'[^'\n]{0,512}'|`[^`\n]{0,512}`|[^\s\"'`,;&(){}\[\]<>]{1,512})"
)
_CLI_FLAG = re.compile(
    r"--(?P<name>(?:[A-Za-z][A-Za-z0-9-]{0,40}?)?(?:key|token|secret|passw(?:or)?d|pwd|passphrase))"
    r"[ \t]+(?P<val>\"[^\"\n]{1,512}\"|'[^'\n]{1,512}'|[^\s\"'`-][^\s\"'`]{0,511})",
    re.IGNORECASE,
)
_BEARER = re.compile(
    r"(?P<scheme>" + _case_variants("bearer", "basic") + r")[ \t]+(?P<val>[A-Za-z0-9._~+/-]{8,}=*)"
)
_KEY_NAME_CHAR = re.compile(r"[A-Za-z0-9_.-]")
_SECRET_KEY_QUALIFIERS = frozenset(
    {"api", "apikey", "access", "secret", "private", "auth", "client", "encryption", "signing",
     "master", "license", "session", "service", "account", "subscription", "app", "admin", "ssh",
     "deploy", "hmac", "x-api", "openai", "anthropic", "hf", "huggingface", "aws", "stripe",
     "slack", "github", "gh", "google", "gcp", "azure", "mistral", "groq", "together", "cohere",
     "replicate", "wandb", "pinecone", "signature", "webhook", "bot", "user", "consumer", "jwt"}
)  # fmt: skip
_NON_SECRET_TOKEN_QUALIFIERS = frozenset(
    {"bos", "eos", "pad", "unk", "sep", "cls", "mask", "first", "last", "next", "prev",
     "previous", "stop", "start", "end", "special", "begin", "decoded", "input", "output",
     "generated", "sampled", "predicted", "target", "max", "min", "num", "n", "eot", "eom",
     "image", "audio", "think", "tool"}
)  # fmt: skip
_PLACEHOLDER_VALUES = frozenset(
    {"null", "none", "nil", "undefined", "true", "false", "changeme", "redacted", "secret",
     "password", "todo", "tbd", "n/a"}
)  # fmt: skip
_PLACEHOLDER_MARKERS = (
    "example", "changeme", "placeholder", "redacted", "dummy", "your", "xxxx", "****", "...", "…",
    "<", ">",
)  # fmt: skip
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9:.]+(?:Z|[+-][0-9:]+)?)?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_DIGEST = re.compile(
    r"(?:sha1|sha224|sha256|sha384|sha512|md5|blake2b|blake3)[:-][0-9a-fA-F]{16,}", re.IGNORECASE
)
_HEX = re.compile(r"[0-9a-fA-F]+")
_SEGMENT_SPLIT = re.compile(r"[._:/@+~#()\[\]{},-]")
_ATTRIBUTE_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
# CamelCase words: LiteralString, SupportsIndex. Every chunk starts at a capital, so
# the pattern cannot backtrack exponentially on a long lowercase run. The strict form
# (3+ letters a chunk) is what a random mixed-case secret almost never looks like;
# the loose one also takes type names (ColumnNameOrSelector, KeyT) and is used only
# for the bare key "key", whose values are rarely secrets.
_CAMEL_WORDS = re.compile(r"(?=[A-Za-z])(?:[a-z]{3,})?(?:[A-Z][a-z]{2,})*[0-9]*")
_CAMEL_WORDS_LOOSE = re.compile(r"(?=[A-Za-z])(?:[a-z]+)?(?:[A-Z][a-z]+)*[A-Z]?[0-9]*")
_NUM_UNIT = re.compile(r"[0-9]+[A-Za-z]{1,2}|[0-9]+x[0-9]+|[a-z]+[0-9]+[a-z]+")  # 8B, 512x8, f2py


def _wordy(segment: str, camel: re.Pattern[str] = _CAMEL_WORDS) -> bool:
    """A piece of an identifier: a word, a number, a word with a number, "8B", "512x8",
    CamelCase words of three letters or more ("SupportsIndex")."""
    if not segment or segment.isdigit():
        return True
    core = segment.rstrip("0123456789")
    if core.isalpha() and (core.islower() or core.isupper() or core.istitle()):
        return True
    return _NUM_UNIT.fullmatch(segment) is not None or camel.fullmatch(segment) is not None


def generic_threshold(length: int) -> float:
    """Bits per character a value of ``length`` must reach to count as a secret.

    3.0 bits for 12+ characters; a shorter string cannot reach 3.0 unless
    nearly every character differs, so 8-11 characters need log2(n) - 0.5.
    """
    return min(GENERIC_ENTROPY_BITS, math.log2(max(length, 2)) - 0.5)


def value_looks_secret(value: str, *, bare_key: bool = False) -> bool:
    """Whether an assigned value is plausibly a real credential (see the docs for each test)."""
    v = value.strip()
    if len(v) < GENERIC_MIN_LENGTH or any(ch.isspace() for ch in v) or "\\" in v:
        return False
    low = v.lower()
    if low in _PLACEHOLDER_VALUES or any(mark in low for mark in _PLACEHOLDER_MARKERS):
        return False
    if v[0] in "$%{" or v.startswith(("os.", "env.", "process.env", "getenv")):
        return False  # a reference to where the secret lives, not the secret
    if len(set(v)) <= 2:
        return False  # ********, xxxxxxxx
    if (
        _NUMBER.fullmatch(v)
        or _TIMESTAMP.fullmatch(v)
        or _UUID.fullmatch(v)
        or _DIGEST.fullmatch(v)
    ):
        return False
    if bare_key and _HEX.fullmatch(v):
        return False  # "key": "<digest>" names a content address, not a credential
    if "://" in v:
        return False  # URLs: credentials in them are the user-at-host rule's
    camel = _CAMEL_WORDS_LOOSE if bare_key else _CAMEL_WORDS
    if all(_wordy(seg, camel) for seg in _SEGMENT_SPLIT.split(v)):
        return False  # identifiers: devbox:llamacpp:tiny-512x8, meta-llama/Llama-3.1-8B
    return shannon_entropy(v) >= generic_threshold(len(v))


def _key_name(text: str, kw_start: int) -> str:
    i = kw_start
    floor = max(0, kw_start - 64)
    while i > floor and _KEY_NAME_CHAR.match(text, i - 1):
        i -= 1
    return text[i:kw_start]


def _key_is_secret(qualifier: str, kw: str) -> tuple[bool, bool]:
    """(does the key name a secret, is it the bare word "key").

    The keyword must start a word of the key (``api_key``, ``apiKey``,
    ``API-KEY``), not end one (``monkey``, ``hotkey``); a glued name
    (``apikey``, ``accesstoken``) counts when its front is a known qualifier.
    """
    kw_low = kw.lower()
    if "public" in qualifier.lower():
        return False, False  # public_key, publicKeyToken: published by design
    if kw_low not in ("key", "token"):
        return True, False  # every *secret, *password, *passphrase, *credentials
    if not qualifier:
        return True, kw_low == "key"
    if qualifier[-1] in "_.-":
        parts = re.split(r"[_.-]+", qualifier.strip("_.-").lower())
        last = parts[-1] if parts else ""
    elif qualifier[-1].islower() and kw[0].isupper():  # camelCase: apiKey, hfToken
        words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", qualifier)
        last = words[-1].lower() if words else ""
    else:
        low = qualifier.lower()
        glued = [w for w in _SECRET_KEY_QUALIFIERS if low.endswith(w)]
        if not glued:
            return False, False
        last = max(glued, key=len)
    if kw_low == "key":
        return last == "" or last in _SECRET_KEY_QUALIFIERS, last == ""
    return last not in _NON_SECRET_TOKEN_QUALIFIERS, False


def _unquote(val: str) -> tuple[str, int]:
    if len(val) >= 2 and val[0] in "\"'`" and val[-1] == val[0]:
        return val[1:-1], 1
    return val, 0


# What every _ASSIGNMENT match starts with, lower-cased (passwd, passphrase and
# password share "pass"; credentials and credential, "credential").
_ASSIGNMENT_STARTS = ("key", "token", "secret", "pass", "pwd", "credential")


def _assignments(text: str) -> Iterator[re.Match[str]]:
    """``_ASSIGNMENT.finditer(text)``, tried only where a keyword starts.

    The pattern's search tries every position of the text (about 16 ns a
    character, the gate's costliest rule on built pages); finding the keywords
    in a lower-cased copy with ``str.find`` and matching there gives the same
    matches in a fraction of that. ``str.lower`` keeps every position except
    for U+0130, which it makes two characters: such a text is searched as before.
    """
    if "\u0130" in text:
        yield from _ASSIGNMENT.finditer(text)
        return
    low = text.lower()
    starts: list[int] = []
    for word in _ASSIGNMENT_STARTS:
        i = low.find(word)
        while i >= 0:
            starts.append(i)
            i = low.find(word, i + 1)
    end = 0
    for i in sorted(starts):
        if i >= end and (m := _ASSIGNMENT.match(text, i)) is not None:
            yield m
            end = m.end()  # as finditer, the next match starts after this one


def find_generic_secrets(text: str) -> Iterator[Hit]:
    """``key/secret/token/password = value`` (and JSON, YAML, CLI-flag and Bearer forms)."""
    for m in _assignments(text):
        kw = m.group("kw")
        qualifier = _key_name(text, m.start("kw"))
        is_secret, bare = _key_is_secret(qualifier, kw)
        if not is_secret:
            continue
        raw_val = m.group("val")
        value, q = _unquote(raw_val)
        if not q:
            nxt = text[m.end() : m.end() + 1]
            if nxt in ("(", "[", ".") or _ATTRIBUTE_PATH.fullmatch(value):
                continue  # an expression: token = tokens[i], password = getpass(), key = self.key
        if not value_looks_secret(value, bare_key=bare):
            continue
        vs = m.start("val") + q
        key = qualifier + kw
        yield Hit(vs, vs + len(value), "generic-secret", value, redact(value, f"{key}="))
    if "--" in text:
        for m in _CLI_FLAG.finditer(text):
            value, q = _unquote(m.group("val"))
            if not value_looks_secret(value):
                continue
            vs = m.start("val") + q
            yield Hit(
                vs, vs + len(value), "generic-secret", value, redact(value, f"--{m.group('name')} ")
            )
    if not ("earer" in text or "EARER" in text or "asic" in text or "ASIC" in text):
        return  # substring tests are ~4x cheaper than scanning with the pattern
    for m in _BEARER.finditer(text):
        value = m.group("val")
        if not value_looks_secret(value):
            continue
        scheme = m.group("scheme")
        yield Hit(
            m.start("val"), m.end("val"), "generic-secret", value, redact(value, f"{scheme} ")
        )


FINDERS: tuple[Callable[[str], Iterator[Hit]], ...] = (
    find_ipv4,
    find_ipv6,
    find_user_at_host,
    find_home_paths,
    find_provider_tokens,
    find_private_keys,
    find_jwts,
    find_generic_secrets,
)
