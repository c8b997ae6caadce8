#!/usr/bin/env python3
"""Writes the hostile-input corpus into OUTDIR: malformed and malicious files (ONNX, npz, npy,
.mpqt, IDX, scripts), bombs made at generation time, and OUTDIR/cases.json, one case per entry:

    {"name": ..., "args": [...], "stdin": "...", "expect": "text the error must contain",
     "status": [65, 70, 74], "setup": "fifo:NAME", "env": {"MPQ_DATA": ...}}

`args` are passed to `mpq` (paths absolute).
Every case is bad input: the test (Tests/ScriptTests/HostileInputTests.swift) runs each under a
4 GiB address-space limit and 20 s, and requires one of `status` (default 65, 70 or 74) and
`expect` on standard error. Python standard library only; the small files are rebuilt every run.

Usage: scripts/gen-hostile.py OUTDIR [REFERENCE_DIR]
"""
import gzip
import json
import os
import struct
import sys
import zipfile
import zlib

out = sys.argv[1]
ref = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference")
os.makedirs(out, exist_ok=True)
cases = []


def here(text):
    return text.replace("{dir}", os.path.abspath(out)).replace("{ref}", os.path.abspath(ref))


def case(name, args, expect, status=(65, 70, 74), stdin=None, setup=None, env=None):
    c = {"name": name, "args": [here(a) for a in args], "expect": expect, "status": list(status)}
    if env is not None:
        c["env"] = {k: here(v) for k, v in env.items()}
    if stdin is not None:
        c["stdin"] = stdin
    if setup is not None:
        c["setup"] = setup
    cases.append(c)


def write(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    return "{dir}/" + name


def script(name, source, expect, status=(65, 70, 74)):
    path = write(name + ".mpq", here(source).encode() if isinstance(source, str) else source)
    case(name, [path], expect, status)


# ---------------------------------------------------------------- protobuf, by hand (ONNX)
def varint(n):
    n &= (1 << 64) - 1
    b = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        if n:
            b.append(x | 0x80)
        else:
            b.append(x)
            return bytes(b)


def field(num, wire, payload):
    return varint(num << 3 | wire) + payload


def vint(num, n):
    return field(num, 0, varint(n))


def ld(num, data):
    if isinstance(data, str):
        data = data.encode()
    return field(num, 2, varint(len(data)) + data)


def f32(num, x):
    return field(num, 5, struct.pack("<f", x))


def tensor(name, dims, floats=None, dtype=1, raw=None, ints=None):
    b = b"".join(vint(1, d) for d in dims) + vint(2, dtype) + ld(8, name)
    if floats is not None:
        b += ld(4, struct.pack("<%df" % len(floats), *floats))
    if ints is not None:
        b += ld(5, b"".join(varint(i) for i in ints))
    if raw is not None:
        b += ld(9, raw)
    return b


def attr_ints(name, values):
    return ld(1, name) + ld(8, b"".join(varint(v) for v in values)) + vint(20, 7)


def attr_int(name, v):
    return ld(1, name) + vint(3, v) + vint(20, 2)


def attr_float(name, v):
    return ld(1, name) + f32(2, v) + vint(20, 1)


def node(op, inputs, outputs, name="", attrs=()):
    b = b"".join(ld(1, i) for i in inputs) + b"".join(ld(2, o) for o in outputs)
    b += ld(3, name or op) + ld(4, op)
    return b + b"".join(ld(5, a) for a in attrs)


def value_info(name, dims):
    shape = b"".join(ld(1, vint(1, d)) for d in dims)
    return ld(1, name) + ld(2, ld(1, vint(1, 1) + ld(2, shape)))


def model(nodes, inits, inputs, outputs, opset=13):
    g = b"".join(ld(1, n) for n in nodes) + ld(2, "g")
    g += b"".join(ld(5, t) for t in inits)
    g += b"".join(ld(11, value_info(n, d)) for n, d in inputs)
    g += b"".join(ld(12, value_info(n, d)) for n, d in outputs)
    return vint(1, 8) + ld(7, g) + ld(8, vint(2, opset))


def onnx(name, nodes, inits, inputs=(("x", [1, 4]),), outputs=(("y", [1, 4]),), expect="", opset=13, load=True):
    path = write(name + ".onnx", model(nodes, inits, inputs, outputs, opset))
    case("onnx-" + name, ["-e", 'load("%s")' % path], expect)
    return path


W = tensor("w", [4, 4], [0.5] * 16)
B = tensor("b", [4], [0.0] * 4)
onnx("clip-no-inputs", [node("Clip", [], ["y"])], [], expect="Clip")
onnx("add-one-input", [node("Add", ["x"], ["y"])], [], expect="Add")
onnx("relu-two-inputs", [node("Relu", ["x", "x"], ["y"])], [], expect="Relu")
onnx("gemm-no-weight", [node("Gemm", ["x"], ["y"], attrs=[attr_int("transB", 1)])], [], expect="Gemm")
onnx("conv-3d-weight", [node("Conv", ["x", "w"], ["y"])], [tensor("w", [2, 2, 2], [1.0] * 8)],
     inputs=(("x", [1, 2, 4, 4]),), expect="Conv")
onnx("conv-zero-stride", [node("Conv", ["x", "w"], ["y"], attrs=[attr_ints("strides", [0, 0])])],
     [tensor("w", [1, 1, 1, 1], [1.0])], inputs=(("x", [1, 1, 4, 4]),), expect="stride")
onnx("conv-negative-pads", [node("Conv", ["x", "w"], ["y"], attrs=[attr_ints("pads", [-9, -9, -9, -9])])],
     [tensor("w", [1, 1, 1, 1], [1.0])], inputs=(("x", [1, 1, 4, 4]),), expect="pad")
onnx("conv-groups-zero", [node("Conv", ["x", "w"], ["y"], attrs=[attr_int("group", 0)])],
     [tensor("w", [1, 1, 1, 1], [1.0])], inputs=(("x", [1, 1, 4, 4]),), expect="group")
onnx("conv-huge-dilation", [node("Conv", ["x", "w"], ["y"], attrs=[attr_ints("dilations", [1 << 40, 1 << 40])])],
     [tensor("w", [1, 1, 3, 3], [1.0] * 9)], inputs=(("x", [1, 1, 4, 4]),), expect="dilation")
onnx("maxpool-huge-pads", [node("MaxPool", ["x"], ["y"], attrs=[attr_ints("kernel_shape", [2, 2]),
                                                              attr_ints("pads", [1 << 22] * 4)])],
     [], inputs=(("x", [1, 1, 4, 4]),), expect="")
onnx("maxpool-kernel-zero", [node("MaxPool", ["x"], ["y"], attrs=[attr_ints("kernel_shape", [0, 0])])],
     [], inputs=(("x", [1, 1, 4, 4]),), expect="kernel")
onnx("maxpool-stride-zero", [node("MaxPool", ["x"], ["y"], attrs=[attr_ints("kernel_shape", [2, 2]),
                                                                attr_ints("strides", [0, 0])])],
     [], inputs=(("x", [1, 1, 4, 4]),), expect="stride")
onnx("input-8gib", [node("Relu", ["x"], ["y"])], [], inputs=(("x", [1, 1 << 31, 2]),), expect="")
onnx("input-overflow", [node("Relu", ["x"], ["y"])], [], inputs=(("x", [1, 1 << 40, 1 << 40]),), expect="")
onnx("init-huge-dims", [node("Add", ["x", "w"], ["y"])], [tensor("w", [1 << 20, 1 << 20], [1.0])], expect="w")
onnx("init-negative-dims", [node("Add", ["x", "w"], ["y"])], [tensor("w", [-4], [1.0])], expect="negative")
onnx("init-short-raw", [node("Add", ["x", "w"], ["y"])], [tensor("w", [4], raw=b"\0" * 7)], expect="raw data")
onnx("reshape-huge", [node("Reshape", ["x", "s"], ["y"])], [tensor("s", [2], dtype=7, ints=[1 << 40, 1 << 40])], expect="")
onnx("flatten-axis-9", [node("Flatten", ["x"], ["y"], attrs=[attr_int("axis", 9)])], [], expect="axis")
onnx("softmax-axis-9", [node("Softmax", ["x"], ["y"], attrs=[attr_int("axis", 9)])], [], expect="axis")
onnx("bn-wrong-sizes", [node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"])],
     [tensor("s", [3], [1.0] * 3), tensor("b", [4], [0.0] * 4), tensor("m", [4], [0.0] * 4), tensor("v", [4], [1.0] * 4)],
     inputs=(("x", [1, 4, 2, 2]),), outputs=(("y", [1, 4, 2, 2]),), expect="")
onnx("gemm-mismatch", [node("Gemm", ["x", "w", "b"], ["y"], attrs=[attr_int("transB", 1)])],
     [tensor("w", [4, 5], [0.5] * 20), B], expect="")
onnx("undefined-input", [node("Relu", ["nothing"], ["y"])], [], expect="nothing")
onnx("no-output", [node("Relu", ["x"], [])], [], expect="output")
onnx("qdq-empty-zero", [node("QuantizeLinear", ["x", "s", "z"], ["q"]), node("DequantizeLinear", ["q", "s", "z"], ["y"])],
     [tensor("s", [], [0.1]), tensor("z", [0], dtype=2, raw=b"")], expect="zero point")
onnx("qdq-mismatched-zero", [node("QuantizeLinear", ["x", "s", "z"], ["q"]), node("DequantizeLinear", ["q", "s", "z2"], ["y"])],
     [tensor("s", [], [0.1]), tensor("z", [], dtype=2, raw=b"\x05"), tensor("z2", [], dtype=2, raw=b"\x07")], expect="zero point")
onnx("qdq-zero-count", [node("DequantizeLinear", ["w", "s", "z"], ["wd"], attrs=[attr_int("axis", 0)]),
                        node("MatMul", ["x", "wd"], ["y"])],
     [tensor("w", [4, 4], dtype=3, raw=b"\1" * 16), tensor("s", [4], [0.1] * 4), tensor("z", [3], dtype=3, raw=b"\0" * 3)],
     expect="zero point")
onnx("qdq-zero-range", [node("QuantizeLinear", ["x", "s", "z"], ["q"]), node("DequantizeLinear", ["q", "s", "z"], ["y"])],
     [tensor("s", [], [0.1]), tensor("z", [], dtype=2, ints=[1000])], expect="zero point")
onnx("qdq-nan-scale", [node("QuantizeLinear", ["x", "s"], ["q"]), node("DequantizeLinear", ["q", "s"], ["y"])],
     [tensor("s", [], [float("nan")])], expect="scale")
onnx("opset-99", [node("Relu", ["x"], ["y"])], [], opset=99, expect="opset")
onnx("nan-weights", [node("Flatten", ["x"], ["f"]), node("MatMul", ["f", "w"], ["y"])], [tensor("w", [784, 10], [float("nan")] * 7840)],
     inputs=(("x", [1, 1, 28, 28]),), outputs=(("y", [1, 10]),), expect="")
cases.pop()  # a model with NaN weights loads (it is well formed); the operations that use it report it below
nan_model = "{dir}/nan-weights.onnx"

# Graphs that are valid protobuf but deeply nested or cyclic.
write("cycle.onnx", model([node("Relu", ["y"], ["x2"]), node("Relu", ["x2"], ["y"])], [], [("x", [1, 4])], [("y", [1, 4])]))
case("onnx-cycle", ["-e", 'load("{dir}/cycle.onnx")'], "")
write("deep-relu.onnx", model([node("Relu", ["x" if i == 0 else "v%d" % (i - 1)], ["y" if i == 19999 else "v%d" % i], name="r%d" % i)
                               for i in range(20000)], [], [("x", [1, 4])], [("y", [1, 4])]))
case("onnx-20000-nodes-evaluate", ["-e", 'm = load("{dir}/deep-relu.onnx"); predict(m, zeros([1, 4])); [][1]'], "")

# Truncations and corruptions of a real model.
cnn = open(os.path.join(ref, "fmnist_cnn.onnx"), "rb").read()
for cut in (1, 7, 100, len(cnn) // 3, len(cnn) // 2, len(cnn) - 1):
    write("cnn-cut-%d.onnx" % cut, cnn[:cut])
    case("onnx-cut-%d" % cut, ["-e", 'load("{dir}/cnn-cut-%d.onnx")' % cut], "")
    case("layers-cut-%d" % cut, ["layers", "{dir}/cnn-cut-%d.onnx" % cut], "")
for i, at in enumerate((20, 200, 2000, len(cnn) // 2)):
    b = bytearray(cnn)
    for k in range(8):
        b[(at + k * 37) % len(b)] ^= 0xFF
    write("cnn-flip-%d.onnx" % i, bytes(b))
    case("onnx-flip-%d" % i, ["-e", 'm = load("{dir}/cnn-flip-%d.onnx"); evaluate(m, fashion_mnist(split: "test", limit: 8)); [][1]' % i], "")
case("layers-clip-no-inputs", ["layers", "{dir}/clip-no-inputs.onnx"], "Clip")
case("evaluate-missing", ["evaluate", "{dir}/no-such-file.onnx"], "no such file")
case("layers-missing", ["layers", "{dir}/no-such-file.onnx"], "no such file")
case("train-unknown-arch", ["train", "nosuch"], "nosuch")
case("train-bad-epochs", ["train", "mlp", "--epochs", "abc"], "epochs")
case("unknown-option", ["--bogus"], "bogus")
case("notebook-bad-output", ["notebook", "{dir}/ok.mpq", "-o", "{dir}/out.pdf"], "ipynb")
write("ok.mpq", b"print(1)\n")


# ---------------------------------------------------------------- npy / npz
def npy(shape, descr="<f4", data=b"", header=None):
    h = header or "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    h = h + " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data


def npz(name, members, compress=False):
    path = os.path.join(out, name)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as z:
        for n, data in members:
            z.writestr(n, data)
    return "{dir}/" + name


def npz_case(name, path, expect):
    case("npz-" + name, ["-e", 'load("%s", into: zoo("mlp"))' % path], expect)


# A deflate bomb: a member whose header claims 3 GiB of zeros (the stream really inflates to it).
bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
chunk = b"\0" * (1 << 20)
body = npy("(805306368,)")
stream = bomb.compress(body) + bomb.flush(zlib.Z_FULL_FLUSH)
# After a full flush the compressor starts afresh, so each further MiB of zeros deflates to the same bytes.
piece = bomb.compress(chunk) + bomb.flush(zlib.Z_FULL_FLUSH)
stream += piece * (3 * 1024) + bomb.flush()
path = os.path.join(out, "bomb.npz")
with open(path, "wb") as f:
    # Written by hand: the sizes are real, the CRC is not computed (the reader must stop before it matters).
    size = len(body) + 3 * 1024 * len(chunk)
    crc = 0
    name = b"w.npy"
    zip64 = struct.pack("<HHQQ", 1, 16, size, len(stream))
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name), len(zip64)) + name + zip64
    f.write(local + stream)
    cd_off = len(local) + len(stream)
    zip64c = struct.pack("<HHQQ", 1, 16, size, len(stream))
    central = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, 8, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                          len(name), len(zip64c), 0, 0, 0, 0, 0) + name + zip64c
    f.write(central)
    f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), cd_off, 0))
npz_case("deflate-bomb", "{dir}/bomb.npz", "")
# A member that claims 4 GiB but holds a few bytes.
npz_case("claims-4gib", npz("claims.npz", [("w.npy", npy("(1073741824,)", data=b"\0" * 16))]), "")
npz_case("npy-shape-overflow", npz("overflow.npz", [("w.npy", npy("(9223372036854775807, 4)"))]), "")
npz_case("npy-negative-shape", npz("negative.npz", [("w.npy", npy("(-3,)"))]), "")
npz_case("npy-bad-header", npz("badheader.npz", [("w.npy", npy("", header="{'descr': '<f4', 'shape': (((((((")) ]), "")
npz_case("npy-unknown-dtype", npz("dtype.npz", [("w.npy", npy("(2,)", descr="<c16", data=b"\0" * 32))]), "")
npz_case("not-a-zip", "{dir}/ok.mpq", "")
npz_case("empty-file", write("empty.npz", b""), "")
state = open(os.path.join(ref, "fmnist_mlp.npz"), "rb").read()
for cut in (30, len(state) // 2, len(state) - 10):
    npz_case("cut-%d" % cut, write("mlp-cut-%d.npz" % cut, state[:cut]), "")
b = bytearray(state)
b[len(b) // 2] ^= 0xFF
npz_case("crc", write("mlp-crc.npz", bytes(b)), "CRC")
case("npy-huge", ["-e", 'load_npy("%s")' % write("huge.npy", npy("(1073741824, 1073741824)"))], "")
case("npy-truncated", ["-e", 'load_npy("%s")' % write("short.npy", npy("(100,)", data=b"\0" * 10))], "")
# The real MLP state dict with NaN in its first weight: well formed, so it loads; what uses it reports it.
with zipfile.ZipFile(os.path.join(ref, "fmnist_mlp.npz")) as z:
    members = [(n, z.read(n)) for n in z.namelist()]
first = members[0][1]
hlen = struct.unpack("<H", first[8:10])[0]
members[0] = (members[0][0], first[:10 + hlen] + struct.pack("<f", float("nan")) * ((len(first) - 10 - hlen) // 4))
nan_mlp = npz("nanmlp.npz", members)
script("nan-state-hutchinson", 'm = load("%s", into: zoo("mlp"))\nhessian_trace(m, fashion_mnist(split: "train", limit: 8), method: "hutchinson")'
       % nan_mlp, "NaN")
script("nan-state-sensitivity", 'm = load("%s", into: zoo("mlp"))\nsensitivity(m, fashion_mnist(split: "train", limit: 8), metric: "hessian", bits: [2, 4])'
       % nan_mlp, "NaN")

# ---------------------------------------------------------------- IDX, .mpqt
def idx(dims, data, dtype=0x08):
    return b"\0\0" + bytes([dtype, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + data


def idx_case(name, images, labels=None, expect=""):
    folder = os.path.join(out, "idx-" + name)
    os.makedirs(folder, exist_ok=True)
    for split in ("train", "t10k"):
        with open(os.path.join(folder, split + "-images-idx3-ubyte.gz"), "wb") as f:
            f.write(images)
        with open(os.path.join(folder, split + "-labels-idx1-ubyte.gz"), "wb") as f:
            f.write(labels if labels is not None else gzip.compress(idx([4], b"\1" * 4)))
    case("idx-" + name, ["-e", 'fashion_mnist(split: "train", limit: 4)'], expect, env={"MPQ_DATA": folder})


idx_case("huge", gzip.compress(idx([1 << 31, 28, 28], b"")))
idx_case("truncated", gzip.compress(idx([10, 28, 28], b"\0" * 100)))
idx_case("bad-type", gzip.compress(idx([1, 28, 28], b"\0" * 784, dtype=0x42)))


def gzip_bomb(head, mib):
    """A gzip stream of `head` and `mib` MiB of zeros, made without deflating them all (CRC not computed)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    body += piece * mib + c.flush()
    return b"\x1f\x8b\x08\0\0\0\0\0\0\xff" + body + struct.pack("<II", 0, (len(head) + (mib << 20)) & 0xFFFFFFFF)


idx_case("gzip-bomb", gzip_bomb(idx([1 << 20, 28, 28], b""), 1024))
idx_case("labels-out-of-range", gzip.compress(idx([4, 28, 28], b"\0" * 784 * 4)), gzip.compress(idx([4], b"\xff" * 4)))
idx_case("empty", b"")


def mpqt(header_fields):
    return b"MPQT" + header_fields


def mpqt_file(name, header, codes):
    h = json.dumps(header).encode()
    return write(name + ".mpqt", b"MPQT" + struct.pack("<I", len(h)) + h + codes)


good = {"shape": [4], "bits": 4, "scheme": "asymmetric", "sliceSize": 4, "scales": [0.5], "zeroPoints": [3]}
for name, change in (("zero-max", {"zeroPoints": [9223372036854775807]}), ("zero-min", {"zeroPoints": [-9223372036854775808]}),
                     ("zero-16", {"zeroPoints": [16]}), ("scale-negative", {"scales": [-1.0]}),
                     ("shape-huge", {"shape": [1 << 40], "scales": [0.5] * 1}), ("bits-0", {"bits": 0}),
                     ("scheme-unknown", {"scheme": "magic"}), ("slice-zero", {"sliceSize": 0})):
    header = dict(good, **change)
    case("mpqt-" + name, ["-e", 'dequantize(load("%s"))' % mpqt_file("bad-" + name, header, b"\x12\x34")], "")
case("mpqt-good-control", ["-e", 'print(dequantize(load("%s"))); [][1]' % mpqt_file("good", good, b"\x12\x34")], "out of range")
case("mpqt-garbage", ["-e", 'load("%s")' % write("garbage.mpqt", b"MPQT" + os.urandom(64) if False else b"MPQT" + bytes(range(64)))], "")
case("mpqt-empty", ["-e", 'load("%s")' % write("empty.mpqt", b"")], "")

# ---------------------------------------------------------------- policy files (JSON)
def policy_case(name, text, expect):
    path = write("policy-" + name + ".json", text.encode() if isinstance(text, str) else text)
    case("policyfile-" + name, ["-e", 'load("%s", model: zoo("mlp"))' % path], expect)


def entry(name, bits=4, act="null"):
    return '{"name": "%s", "weight": {"bits": %s}, "activation": %s}' % (name, bits, act)


def policy(entries, version="1"):
    return '{"format": "mpq-policy", "version": %s, "layers": [%s]}' % (version, ", ".join(entries))


policy_case("bits-40", policy([entry("fc1", 40), entry("fc2"), entry("fc3")]), "weight.bits")
policy_case("bits-1e300", policy([entry("fc1", "1e300"), entry("fc2"), entry("fc3")]), "weight.bits")
policy_case("bits-string", policy([entry("fc1", '"4"'), entry("fc2"), entry("fc3")]), "weight.bits")
policy_case("activation-nan", policy([entry("fc1", act='{"bits": NaN}'), entry("fc2"), entry("fc3")]), "")
policy_case("activation-99", policy([entry("fc1", act='{"bits": 99}'), entry("fc2"), entry("fc3")]), "activation.bits")
policy_case("unknown-layer", policy([entry("fc1"), entry("fc2"), entry("fc3"), entry("conv9")]), "conv9")
policy_case("missing-layer", policy([entry("fc1"), entry("fc2")]), "fc3")
policy_case("duplicate-layer", policy([entry("fc1"), entry("fc1"), entry("fc2"), entry("fc3")]), "twice")
policy_case("unknown-scheme", policy(['{"name": "fc1", "weight": {"bits": 4, "scheme": "magic"}}', entry("fc2"), entry("fc3")]), "scheme")
policy_case("version-99", policy([entry("fc1"), entry("fc2"), entry("fc3")], version="99"), "version")
policy_case("not-json", b"\x00\xff{{{", "JSON")
policy_case("truncated", policy([entry("fc1"), entry("fc2"), entry("fc3")])[:40], "JSON")
policy_case("deep", "[" * 100000 + "]" * 100000, "")
policy_case("top-list", "[1, 2]", "object")
case("policy-without-model", ["-e", 'load("{dir}/policy-bits-40.json")'], "model:")
case("policy-save-not-json", ["-e", 'm = zoo("mlp"); save(policy(m, bits: 4), "{dir}/p.npz")'], ".json")

# ---------------------------------------------------------------- scripts
script("zeros-8gib", "zeros([65536, 32768])", "")
script("zeros-overflow", "zeros([1e15, 1e15])", "")
script("range-tensor", "tensor(0..<3000000000)", "")
script("string-doubling", 's = "x"\nwhile true { s = s + s }', "")
script("list-3e9", "l = list(0..<3e9)", "")
script("tensor-doubling", "t = ones([1024])\nwhile true { t = reshape(tensor([t, t]), [-1]) }", "")
script("policy-bits-1e300", 'm = zoo("mlp")\npolicy(m, bits: 1e300)', "bits")
script("policy-bits-inf", 'm = zoo("mlp")\npolicy(m, bits: 1e400)', "bits")
script("policy-bits-nan-list", 'm = zoo("mlp")\npolicy(m, bits: [1e400 - 1e400, 4, 4])', "bits")
script("policy-bits-record", 'm = zoo("mlp")\npolicy(m, bits: {fc1: 1e300})', "")
script("policy-bits-32", 'm = zoo("mlp")\npolicy(m, bits: 40)', "bits")
script("search-pins-1e300",
       'm = zoo("mlp")\ns = sensitivity(m, fashion_mnist(split: "train", limit: 16), metric: "mse", bits: [2, 4, 8])\n'
       'search(s, average_bits: 4, pin: {fc1: 1e300})', "pin")
script("sensitivity-bits-1e300", 'm = zoo("mlp")\nsensitivity(m, fashion_mnist(split: "train", limit: 16), metric: "mse", bits: [1e300])', "bits")
script("sensitivity-bits-nan", 'm = zoo("mlp")\nsensitivity(m, fashion_mnist(split: "train", limit: 16), metric: "mse", bits: [1e400 - 1e400])', "bits")
script("sensitivity-empty-data", 'm = zoo("mlp")\nsensitivity(m, fashion_mnist(split: "train", limit: 0), metric: "hessian", bits: [2, 4])', "")
script("pack-inf", "pack(tensor([1e400, 1, 2]), bits: 4)", "")
script("pack-nan", "pack(tensor([1e400 - 1e400, 1]), bits: 4)", "")
script("pack-1e30", "pack(tensor([1e30, 1]), bits: 4)", "")
script("pack-bits-1e300", "pack(tensor([1, 2]), bits: 1e300)", "bits")
script("unpack-bits-nan", "unpack(pack(tensor([1, 2]), bits: 4), bits: 1e400 - 1e400)", "")
script("quantize-nan", "quantize(tensor([1e400 - 1e400, 1, 2]), bits: 4)", "")
script("quantize-bits-huge", "quantize(tensor([1, 2]), bits: 1e300)", "bits")
script("randn-seed-1e300", "randn([2], seed: 1e300)", "seed")
script("index-1e300", "[1, 2, 3][1e300]", "")
script("index-nan", "[1, 2, 3][1e400 - 1e400]", "")
script("range-huge", "l = 0..<1e300\nlen(l)", "", status=(0, 65, 70, 74))
script("for-huge-range", "for i in 0..<1e300 { if i > 10 { [][1] } }", "")
script("tensor-index-huge", "zeros([3])[1e300]", "")
script("reshape-huge", "reshape(zeros([4]), [1e300, -1])", "")
script("integer-empty-calibration",
       'm = zoo("mlp")\ninteger_model(m, policy(m, bits: 8, activation_bits: 8), calibration: fashion_mnist(split: "train", limit: 0))',
       "calibration")
script("nan-weights-hutchinson",
       'm = load("%s")\nhessian_trace(m, fashion_mnist(split: "train", limit: 8), method: "hutchinson")' % nan_model, "NaN")
script("nan-weights-eigen",
       'm = load("%s")\ntop_eigenvalue(m, fashion_mnist(split: "train", limit: 8))' % nan_model, "NaN")
script("nan-weights-quantize", 'm = load("%s")\nquantize(m, bits: 4)' % nan_model, "NaN")
script("nul-in-path", 'load("{dir}/ok\\0.onnx")', "NUL")
script("nul-in-save-path", 'save_npy(zeros([2]), "{dir}/x\\0y.npy")', "NUL")
script("non-utf8", b"print(1)\nx = \"\xff\xfe\"\n", "UTF-8")
script("deep-brackets", "x = " + "(" * 100000 + "1" + ")" * 100000, "")
script("plus-chain", "x = " + "+".join(["1"] * 100000), "", status=(0, 65, 70))
script("pow-chain", "x = " + "**".join(["1"] * 100000), "", status=(0, 65, 70))
script("pipe-chain", "fn f(x) { x }\nx = 1" + " |> f()" * 100000, "", status=(0, 65, 70))
script("field-chain", "r = {a: 1}\nx = r" + ".a" * 100000, "", status=(0, 65, 70))
script("call-chain", "fn f(x) { f }\nx = f" + "(1)" * 100000, "", status=(0, 65, 70))
script("unary-chain", "x = " + "-" * 100000 + "1", "", status=(0, 65, 70))
script("not-chain", "x = " + "not " * 100000 + "true", "", status=(0, 65, 70))
script("index-chain", "l = [1]\nx = l" + "[0]" * 100000, "", status=(0, 65, 70))
script("nested-lists", "x = " + "[" * 100000 + "]" * 100000, "")
script("nested-records", "x = " + "{a: " * 100000 + "1" + "}" * 100000, "")
script("nested-interpolation", "x = " + '"\\(' * 10000 + "1" + ')"' * 10000, "")
script("deep-value-print", "l = []\nfor i in 0..<100000 { l = [l] }\nprint(l)", "", status=(0, 70))
script("deep-value-compare", "a = []\nb = []\nfor i in 0..<100000 { a = [a]; b = [b] }\nprint(a == b)", "", status=(0, 70))
script("recursion", "fn f(n) { f(n + 1) }\nf(0)", "nested calls")
script("recursion-default", "fn f(n: f()) { n }\nf()", "nested calls")
script("recursion-default-mutual", "fn g() { f() }\nfn f(n: g()) { n }\nf()", "nested calls")
script("fifty-mb", "x = 1\n" * (50 * 1024 * 1024 // 6), "", status=(0, 65, 70, 74))
cases[-1]["name"] = "fifty-mb-script"
script("huge-string-repeat", 'x = "ab" * 1e15', "")
script("save-to-directory", 'save_npy(zeros([2]), "{dir}")', "directory")
script("save-into-missing-dir", 'save_npy(zeros([2]), "{dir}/no/such/dir/x.npy")', "")
os.makedirs(os.path.join(out, "fifo-dir"), exist_ok=True)
case("save-to-fifo", ["-e", 'save_npy(zeros([2]), "{dir}/fifo-dir/pipe.npy")'], "FIFO", setup="fifo:fifo-dir/pipe.npy")

# ---------------------------------------------------------------- learning builtins' files and arguments
write("bad-cache.json", b"{not json at all")
script("samples-bad-cache", 'samples(zoo("mlp"), fashion_mnist(split: "train", limit: 16), count: 1, cache: "{dir}/bad-cache.json")', "not a samples cache")
write("bad-checkpoint.npz", b"PK\x03\x04" + b"\xff" * 64)
script("train-bad-checkpoint", 'train(zoo("mlp"), fashion_mnist(split: "train", limit: 16), epochs: 1, checkpoint: "{dir}/bad-checkpoint.npz")', "bad-checkpoint.npz")
script("hmq-unreachable", 'hmq(zoo("cnn"), fashion_mnist(split: "train", limit: 16), average_bits: 1)', "reach at most")
script("samples-absurd-count", 'samples(zoo("mlp"), fashion_mnist(split: "train", limit: 16), count: 1e9)', "0…100000")
script("bnn-no-variant", 'bnn(zoo("mlp"), fashion_mnist(split: "train", limit: 16))', "no binary variant")
script("predictor-ragged", 'predictor([{bits: [2, 4], accuracy: 0.5}, {bits: [4], accuracy: 0.8}])', "widths")
script("predict-unknown-width", 'p = predictor([{bits: [2], accuracy: 0.5}, {bits: [4], accuracy: 0.8}], epochs: 1, hidden: 2)\npredict(p, [[3]])', "not trained on")
write("foreign-cache.json", b'{"key": "0000000000000000", "samples": [{"bits": [2, 2, 2], "accuracy": 0.5}]}')
script("samples-merge-foreign", 'samples(zoo("mlp"), fashion_mnist(split: "train", limit: 16), policies: [], cache: "{dir}/merged.json", merge: ["{dir}/foreign-cache.json"])', "another model")
script("samples-merge-not-paths", 'samples(zoo("mlp"), fashion_mnist(split: "train", limit: 16), policies: [], cache: "{dir}/merged.json", merge: [1])', "cache file paths")
tiny_predictor = 'p = predictor([{bits: [2, 2, 2], accuracy: 0.5}, {bits: [8, 8, 8], accuracy: 0.9}], epochs: 1, hidden: 2)\n'
script("evolve-infeasible", tiny_predictor + 'evolve(zoo("mlp"), p, fashion_mnist(split: "train", limit: 16), average_bits: 1)', "cheapest")
script("evolve-two-budgets", tiny_predictor + 'evolve(zoo("mlp"), p, fashion_mnist(split: "train", limit: 16), average_bits: 4, energy: 1)', "one budget")
script("evolve-not-a-predictor", 'evolve(zoo("mlp"), 3, fashion_mnist(split: "train", limit: 16), average_bits: 4)', "Predictor")
script("evolve-bad-population", tiny_predictor + 'evolve(zoo("mlp"), p, fashion_mnist(split: "train", limit: 16), average_bits: 4, population: 1)', "population")
script("random-policies-infeasible", 'random_policies(zoo("mlp"), energy: 0.000001)', "cheapest")
script("predictor-bad-pretrain", 'predictor([{bits: [2], accuracy: 0.5}, {bits: [4], accuracy: 0.8}], pretrain: 3)', "Sensitivity")
script("autoq-infeasible", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 1, episodes: 1)', "costs")
script("autoq-bad-mode", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, mode: "fast")', "resource")
script("autoq-bad-bits", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, bits: [8, 2])', "[low, high]")
script("autoq-no-budget", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16))', "one budget")
script("autoq-zero-episodes", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, episodes: 0)', "episodes")
script("autoq-activations-no-calibration", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, activation_bits: [4, 8])', "calibration")
script("prune-zero", 'prune(zoo("cnn"), keep: 0)', "(0, 1]")
script("prune-string", 'prune(zoo("cnn"), keep: "half")', "ratio")
script("prune-residual", 'prune(zoo("resnet20"), keep: {"layers.0.conv2": 0.5})', "Add")
script("prune-unknown", 'prune(zoo("cnn"), keep: {nothing: 0.5})', "prunable layers")
script("evolve-huge-population", tiny_predictor + 'evolve(zoo("mlp"), p, fashion_mnist(split: "train", limit: 16), average_bits: 4, population: 1e9)', "population")
script("samples-keep-zero", 'samples(zoo("cnn"), fashion_mnist(split: "train", limit: 16), count: 1, keep: [0])', "(0, 1]")
script("samples-prune-unknown", 'samples(zoo("cnn"), fashion_mnist(split: "train", limit: 16), count: 1, keep: [0.5], prune: ["nothing"])', "prunable layers")
script("evolve-keep-untrained", tiny_predictor + 'evolve(zoo("mlp"), p, fashion_mnist(split: "train", limit: 16), average_bits: 4, keep: [0.5])', "pruned layers")
script("random-policies-keep-residual", 'random_policies(zoo("resnet20"), average_bits: 4, keep: [0.5], prune: ["layers.0.conv2"])', "cannot be pruned alone")
script("divergence-predictor-few", 'divergence_predictor(zoo("mlp"), [{bits: [2, 2, 2], accuracy: 0.5}], fashion_mnist(split: "train", limit: 16))', "at least 3")
script("divergence-predictor-flat", 'divergence_predictor(zoo("mlp"), [{bits: [4, 4, 4], accuracy: 0.5}, {bits: [4, 4, 4], accuracy: 0.6}, {bits: [4, 4, 4], accuracy: 0.7}], fashion_mnist(split: "train", limit: 16))', "same divergence")
script("predictor-pruned-pretrain", 'predictor([{bits: [2], keep: [0.5], accuracy: 0.5}, {bits: [4], keep: [1], accuracy: 0.8}], pretrain: sensitivity(zoo("mlp"), fashion_mnist(split: "train", limit: 16), metric: "kl", bits: [2, 4]))', "bits only")
script("autoq-huge-episodes", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, episodes: 1e9)', "episodes")
script("autoq-bad-checkpoint", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, episodes: 1, ends: nil, checkpoint: "{dir}/bad-checkpoint.npz")', "bad-checkpoint.npz")
script("autoq-foreign-checkpoint", 'save(zoo("mlp"), "{dir}/weights-not-autoq.npz")\nautoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, episodes: 1, ends: nil, checkpoint: "{dir}/weights-not-autoq.npz")', "not an AutoQ checkpoint")
# A model the float runtime runs but the integer engine cannot: channels joined along the height.
concat_h = write("concat-height.onnx", model(
    [node("Conv", ["x", "cw"], ["c"], attrs=[attr_ints("pads", [1, 1, 1, 1])]), node("Relu", ["c"], ["r"]),
     node("Concat", ["r", "r"], ["j"], attrs=[attr_int("axis", 2)]), node("Conv", ["j", "pw"], ["p"]),
     node("GlobalAveragePool", ["p"], ["g"]), node("Flatten", ["g"], ["f"]), node("Gemm", ["f", "fw"], ["y"], attrs=[attr_int("transB", 1)])],
    [tensor("cw", [2, 1, 3, 3], [0.1] * 18), tensor("pw", [2, 2, 1, 1], [0.5] * 4), tensor("fw", [10, 2], [0.3] * 20)],
    (("x", [1, 1, 28, 28]),), (("y", [1, 10]),)))
script("engine-concat-height", 'm = load("%s")\ninteger_model(m, policy(m, bits: 8, activation_bits: 8), calibration: fashion_mnist(split: "train", limit: 16))' % concat_h,
       "axis 2")
script("autoq-sensitivity-not-data", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, episodes: 1, sensitivity: zoo("mlp"))', "sensitivity")
script("autoq-sensitivity-empty", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, episodes: 1, sensitivity: fashion_mnist(split: "train", limit: 0))', "no images")
script("autoq-nan-cost-weight", 'autoq_search(zoo("mlp"), fashion_mnist(split: "train", limit: 16), average_bits: 4, mode: "accuracy", cost_weight: 0 / 0)', "finite")
script("predictor-huge-hidden", 'predictor([{bits: [2], accuracy: 0.5}, {bits: [4], accuracy: 0.8}], hidden: 1e9)', "hidden")
script("zoo-binary-mlp", 'zoo("mlp", binary: true)', "no binary variant")
script("policy-binary-float-model", 'policy(zoo("cnn"), binary: true)', "no binary layers")
script("exists-number", 'exists(42)', "String")
script("engine-binary-wide-policy", 'b = zoo("cnn", binary: true); integer_model(b, policy(b, bits: 8, activation_bits: 8), calibration: fashion_mnist(split: "train", limit: 8))', "1-bit binary per channel")
script("latency-zero-bits", 'latency(zoo("mlp"), bits: [0, 8])', "1…8")
script("bnn-distill-range", 'bnn(zoo("cnn"), fashion_mnist(split: "train", limit: 16), distill: 2)', "0…1")
script("scatter-ragged-xs", 'scatter([[1], [2]], xs: [[1]])', "lists")

with open(os.path.join(out, "cases.json"), "w") as f:
    json.dump(cases, f, indent=0)
print("%d cases in %s" % (len(cases), out))
script("zoo-hidden-zero", 'zoo("mlp", hidden: [0, 8])', "hidden widths of 1…16384")
script("zoo-hidden-huge", 'zoo("mlp", hidden: [1e9])', "hidden widths of 1…16384")
script("zoo-hidden-cnn", 'zoo("cnn", hidden: [64])', "fixed architecture")
script("zoo-hidden-text", 'zoo("mlp", hidden: ["wide"])', "whole numbers")
